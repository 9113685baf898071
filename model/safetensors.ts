import type { FileHandle } from 'node:fs/promises';
import { openRegularFile } from './config-file.js';
import { DTYPE_BYTES, type TensorDtype } from './float-convert.js';
import { ModelFormatError } from './model-format-error.js';
import { toFloat32 } from './tensor-codec.js';

/** One tensor's header entry; offsets are relative to the start of the data section. */
export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Every dtype the safetensors format defines, with its size, so headers validate fully. */
const FORMAT_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

export function isReadableDtype(dtype: string): dtype is TensorDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/**
 * Where a tensor's bytes sit in its file, from the start of the file: what a reader that maps the
 * file itself (onnxruntime's external data) needs instead of a host copy.
 */
export interface TensorFileRef {
  file: string;
  offset: number;
  length: number;
  dtype: TensorDtype;
}

/** The safetensors library's own cap: a bigger header is a corrupt length, not a real header. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** fs reads are capped near 2 GiB per call; bigger tensors (e.g. an 8B model's embedding) loop. */
const READ_CHUNK_BYTES = 1 << 30;

async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(READ_CHUNK_BYTES, target.length - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Top-level keys of a JSON object in source order, so duplicates (which JSON.parse hides) show. */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      const start = i;
      for (i++; i < json.length && json[i] !== '"'; i++) if (json[i] === '\\') i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < json.length && /\s/.test(json[j])) j++;
      if (json[j] === ':') keys.push(JSON.parse(json.slice(start, i + 1)) as string);
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(file: string, name: string, raw: unknown, dataBytes: number): TensorInfo {
  const fail = (problem: string) => new ModelFormatError(file, `tensor "${name}": ${problem}`);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw fail('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in FORMAT_DTYPE_BYTES)) {
    throw fail(
      `unknown dtype ${JSON.stringify(dtype)} (safetensors dtypes: ${Object.keys(FORMAT_DTYPE_BYTES).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw fail(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) {
    throw fail(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataBytes} bytes)`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * FORMAT_DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw fail(
      `holds ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function checkNoOverlap(file: string, tensors: TensorInfo[]): void {
  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) {
      throw new ModelFormatError(
        file,
        `tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${cur.name}" [${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
}

/**
 * One open `.safetensors` file: the header is parsed and validated on open, tensor data is read
 * on demand, one tensor at a time, so loading never holds the whole file and all f32 copies at once.
 */
export class SafetensorsFile {
  readonly file: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Record<string, string> | null;
  private readonly handle: FileHandle;
  private readonly dataStart: number;

  private constructor(
    file: string,
    handle: FileHandle,
    dataStart: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string> | null,
  ) {
    this.file = file;
    this.handle = handle;
    this.dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static async open(file: string): Promise<SafetensorsFile> {
    // Never a blocking open: a FIFO named model.safetensors must be refused, not waited on.
    const handle = (await openRegularFile(file, false))!;
    try {
      const parsed = await SafetensorsFile.parseHeader(file, handle);
      return new SafetensorsFile(file, handle, parsed.dataStart, parsed.tensors, parsed.metadata);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private static async parseHeader(file: string, handle: FileHandle) {
    const { size } = await handle.stat();
    if (size < 8)
      throw new ModelFormatError(file, `file is ${size} bytes, too short for a safetensors header`);
    const lengthBytes = new Uint8Array(8);
    await readFully(handle, lengthBytes, 0);
    const headerLength = Number(Buffer.from(lengthBytes).readBigUInt64LE(0));
    if (8 + headerLength > size) {
      throw new ModelFormatError(
        file,
        `header length ${headerLength} runs past the end of the file (${size} bytes)`,
      );
    }
    if (headerLength > MAX_HEADER_BYTES) {
      throw new ModelFormatError(
        file,
        `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
      );
    }
    const headerBytes = new Uint8Array(headerLength);
    await readFully(handle, headerBytes, 8);
    const text = Buffer.from(headerBytes).toString('utf8');
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (err) {
      throw new ModelFormatError(file, `header is not valid JSON (${(err as Error).message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) {
      throw new ModelFormatError(file, 'header is not a JSON object');
    }
    const seen = new Set<string>();
    for (const key of topLevelKeys(text)) {
      if (seen.has(key)) throw new ModelFormatError(file, `tensor "${key}" appears twice in the header`);
      seen.add(key);
    }
    const dataBytes = size - 8 - headerLength;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> | null = null;
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
          throw new ModelFormatError(file, '__metadata__ is not an object');
        }
        metadata = raw as Record<string, string> | null;
        continue;
      }
      tensors.set(name, parseEntry(file, name, raw, dataBytes));
    }
    checkNoOverlap(file, [...tensors.values()]);
    return { dataStart: 8 + headerLength, tensors, metadata };
  }

  /** The tensor's header entry, or a ModelFormatError naming this file if it is absent. */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new ModelFormatError(this.file, `tensor "${name}" is missing`);
    return info;
  }

  /** Where the tensor's bytes are in this file (its dtype must be one Loom reads). */
  fileRef(name: string): TensorFileRef {
    const info = this.info(name);
    if (!isReadableDtype(info.dtype)) {
      throw new ModelFormatError(
        this.file,
        `tensor "${name}" has dtype ${info.dtype}; Loom reads only F32, F16 and BF16`,
      );
    }
    return {
      file: this.file,
      offset: this.dataStart + info.begin,
      length: info.end - info.begin,
      dtype: info.dtype,
    };
  }

  /** Reads one tensor and converts it to f32 (F16 and BF16 exactly). */
  async read(name: string): Promise<Float32Array> {
    const { dtype, data } = await this.readStored(name);
    return toFloat32(data, dtype);
  }

  /**
   * Reads one tensor as the file stores it: F32 as f32, F16 and BF16 as their 2-byte bit patterns
   * (host copies of adapters keep the file's size; widen with toFloat32).
   */
  async readStored(name: string): Promise<{ dtype: TensorDtype; data: Float32Array | Uint16Array }> {
    const info = this.info(name);
    if (!isReadableDtype(info.dtype)) {
      throw new ModelFormatError(
        this.file,
        `tensor "${name}" has dtype ${info.dtype}; Loom reads only F32, F16 and BF16`,
      );
    }
    const elements = (info.end - info.begin) / DTYPE_BYTES[info.dtype];
    // F32 lands directly in the result's memory (safetensors is little-endian, as are the hosts
    // Loom runs on); halves stay 2 bytes per element.
    const raw = info.dtype === 'F32' ? new Float32Array(elements) : new Uint16Array(elements);
    const bytes = new Uint8Array(raw.buffer);
    const got = await readFully(this.handle, bytes, this.dataStart + info.begin);
    if (got !== bytes.length) {
      throw new ModelFormatError(
        this.file,
        `tensor "${name}": file ended after ${got} of ${bytes.length} bytes`,
      );
    }
    return { dtype: info.dtype, data: raw };
  }

  /**
   * Every tensor as the file stores it (as readStored), from one read of the data region: an
   * adapter's 300-odd tensors were as many awaited reads, each a thread-pool round trip that
   * waited behind whatever the event loop ran (a step's encoding, the scheduler). Tensors view
   * one buffer where their offsets are aligned, else get a copy. That buffer is shared memory: an
   * adapter's host copy then crosses to the adapter reader's caller and to an engine on another
   * thread (OnnxWorkerEngine.writeAdapter) without being copied; cloned, every write in flight
   * held a copy of its adapter, and a queue of them during a step ran the TinyLlama-shaped trace
   * out of memory.
   */
  async readAllStored(): Promise<Map<string, { dtype: TensorDtype; data: Float32Array | Uint16Array }>> {
    let end = 0;
    for (const info of this.tensors.values()) {
      if (!isReadableDtype(info.dtype))
        throw new ModelFormatError(
          this.file,
          `tensor "${info.name}" has dtype ${info.dtype}; Loom reads only F32, F16 and BF16`,
        );
      end = Math.max(end, info.end);
    }
    const region = new Uint8Array(new SharedArrayBuffer(end));
    const got = await readFully(this.handle, region, this.dataStart);
    if (got !== end) throw new ModelFormatError(this.file, `file ended after ${got} of ${end} data bytes`);
    const out = new Map<string, { dtype: TensorDtype; data: Float32Array | Uint16Array }>();
    for (const info of this.tensors.values()) {
      const dtype = info.dtype as TensorDtype;
      const width = DTYPE_BYTES[dtype];
      const elements = (info.end - info.begin) / width;
      const memory = info.begin % width === 0 ? region.buffer : region.slice(info.begin, info.end).buffer;
      const at = info.begin % width === 0 ? info.begin : 0;
      const data =
        dtype === 'F32' ? new Float32Array(memory, at, elements) : new Uint16Array(memory, at, elements);
      out.set(info.name, { dtype, data });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads every tensor of one file into f32 (small files: adapters, tests). */
export async function readSafetensors(
  file: string,
): Promise<Map<string, { dtype: TensorDtype; shape: number[]; data: Float32Array }>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, { dtype: TensorDtype; shape: number[]; data: Float32Array }>();
    for (const info of st.tensors.values()) {
      const data = await st.read(info.name);
      out.set(info.name, { dtype: info.dtype as TensorDtype, shape: info.shape, data });
    }
    return out;
  } finally {
    await st.close();
  }
}
