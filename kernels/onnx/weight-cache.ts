import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import type { LlamaConfig } from '../../model/llama-config.js';
import { BLOCK_SIZE, type WeightFormat } from '../weight-quantization.js';
import type { EncodedWeight, WeightFileLocation } from './base-weights.js';

/**
 * Encoded (quantized or f16) base weights kept on disk, so the next start with the same checkpoint
 * and format reads them instead of encoding ~1 G weights again. A file is keyed by the checkpoint's
 * identity (its config.json and safetensors files: names, sizes, modification times), the format,
 * the block sizes and the encoding version; anything that does not match misses, and a miss
 * rewrites the file. Layout: magic, a u32 header length, a JSON header naming every weight's
 * parts, then the parts, each at a 64-byte boundary so typed-array views need no copy. Entries
 * are what the session takes: a group of quantized modules that share an input is one entry
 * (fusedWeightName), so onnxruntime can map the parts from the file as they are
 * (weightCacheLocations) instead of being handed a copy in memory.
 */
const MAGIC = 'LOOMWC01';
/** Bump when the encoding changes: older files then miss instead of loading other bytes. */
const ENCODING_VERSION = 2;
const ALIGN = 64;

export interface WeightCacheLocation {
  /** Folder of the cache files. */
  dir: string;
  /** The checkpoint's identity (checkpointIdentity). */
  checkpoint: string;
}

/** $XDG_CACHE_HOME/loom, else ~/.cache/loom (where Hugging Face and vLLM users look for caches). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'loom');
}

/**
 * A checkpoint directory's identity: its config.json and *.safetensors files' names, sizes and
 * mtimes, and the config the model was loaded with. The files alone miss --hf-overrides: with
 * `tie_word_embeddings` overridden, lm_head is encoded from the embedding, not lm_head.weight.
 */
export function checkpointIdentity(modelDir: string, config?: LlamaConfig): string {
  const files = readdirSync(modelDir)
    .filter((f) => f === 'config.json' || f.endsWith('.safetensors'))
    .sort();
  const hash = createHash('sha256').update(modelDir);
  if (config) hash.update(`\n${JSON.stringify(config)}`);
  for (const f of files) {
    const s = statSync(join(modelDir, f));
    hash.update(`\n${f} ${s.size} ${s.mtimeMs}`);
  }
  return hash.digest('hex');
}

export function weightCacheFile(location: WeightCacheLocation, format: WeightFormat): string {
  const key = createHash('sha256')
    .update(`${location.checkpoint} ${format} ${JSON.stringify(BLOCK_SIZE)} v${ENCODING_VERSION}`)
    .digest('hex')
    .slice(0, 32);
  return join(location.dir, `weights-${format}-${key}.bin`);
}

type HeaderEntry =
  | { name: string; kind: 'external'; parts: Array<{ path: string; offset: number; length: number }> }
  | {
      name: string;
      kind: 'float16-inputs';
      tiles: Array<{ name: string; offset: number; length: number; dims: [number, number] }>;
    };

/** The header of `file` and its size, or null when there is none or it is not a cache file. */
function readHeader(file: string): { entries: HeaderEntry[]; size: number } | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const prefix = Buffer.alloc(12);
    if (size < 12 || readSync(fd, prefix, 0, 12, 0) !== 12 || prefix.toString('latin1', 0, 8) !== MAGIC)
      return null;
    const header = Buffer.alloc(prefix.readUInt32LE(8));
    if (readSync(fd, header, 0, header.length, 12) !== header.length) return null;
    return { entries: JSON.parse(header.toString('utf8')) as HeaderEntry[], size };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Where each external-data part of `file` lies, for onnxruntime to map (a folder-relative
 * location and an offset), keyed by the part's in-memory path; null when the file holds other
 * names than `names`, a part that is not external data, or one past its end. Only the header is
 * read: the weights stay in the file (the page cache) until onnxruntime packs them.
 */
export function weightCacheLocations(
  file: string,
  names: readonly string[],
): Map<string, WeightFileLocation> | null {
  const header = readHeader(file);
  if (!header) return null;
  const wanted = new Set(names);
  const { entries, size } = header;
  if (entries.length !== wanted.size || !entries.every((e) => wanted.has(e.name))) return null;
  const locations = new Map<string, WeightFileLocation>();
  for (const e of entries) {
    if (e.kind !== 'external') return null;
    for (const p of e.parts) {
      if (p.offset % ALIGN !== 0 || p.offset + p.length > size) return null;
      locations.set(p.path, { location: basename(file), offset: p.offset });
    }
  }
  return locations;
}

/**
 * The encoded weights in `file`, or null when there is none or it does not hold exactly `names`
 * (a file cut short or of another layout counts as none).
 */
export function readWeightCache(file: string, names: readonly string[]): Map<string, EncodedWeight> | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return null;
  }
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) return null;
  const headerLength = bytes.readUInt32LE(8);
  let entries: HeaderEntry[];
  try {
    entries = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength));
  } catch {
    return null;
  }
  const wanted = new Set(names);
  if (entries.length !== wanted.size || !entries.every((e) => wanted.has(e.name))) return null;
  // Views need the file's bytes at a 64-byte boundary (a large read has its own ArrayBuffer).
  const data = bytes.byteOffset % ALIGN === 0 ? bytes : Buffer.from(bytes);
  const view = (offset: number, length: number) => {
    if (offset + length > data.length) throw new RangeError('cache file cut short');
    return new Uint8Array(data.buffer, data.byteOffset + offset, length);
  };
  const out = new Map<string, EncodedWeight>();
  try {
    for (const e of entries) {
      if (e.kind === 'external')
        out.set(e.name, {
          kind: 'external',
          parts: e.parts.map((p) => ({ path: p.path, data: view(p.offset, p.length) })),
        });
      else
        out.set(e.name, {
          kind: 'float16-inputs',
          tiles: e.tiles.map((t) => {
            const b = view(t.offset, t.length);
            return {
              name: t.name,
              data: new Uint16Array(b.buffer, b.byteOffset, b.length / 2),
              dims: t.dims,
            };
          }),
        });
    }
  } catch {
    return null;
  }
  return out;
}

/** Writes the encoded weights to `file` (through a temporary file, so a reader never sees half of one). */
export function writeWeightCache(file: string, encoded: ReadonlyMap<string, EncodedWeight>): void {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const place = (data: Uint8Array) => {
    const at = offset;
    blobs.push(data);
    offset += Math.ceil(data.length / ALIGN) * ALIGN;
    return at;
  };
  const entries: HeaderEntry[] = [...encoded].map(([name, e]) =>
    e.kind === 'external'
      ? {
          name,
          kind: 'external',
          parts: e.parts.map((p) => ({ path: p.path, offset: place(p.data), length: p.data.length })),
        }
      : {
          name,
          kind: 'float16-inputs',
          tiles: e.tiles.map((t) => {
            const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
            return { name: t.name, offset: place(bytes), length: bytes.length, dims: t.dims };
          }),
        },
  );
  // Offsets so far are relative to the data; the data starts after the header, padded.
  let header = Buffer.from(JSON.stringify(entries));
  let start = Math.ceil((12 + header.length) / ALIGN) * ALIGN;
  // Shifting every offset by `start` can lengthen the JSON; repeat until it settles.
  for (;;) {
    const shifted = shift(entries, start);
    header = Buffer.from(JSON.stringify(shifted));
    const next = Math.ceil((12 + header.length) / ALIGN) * ALIGN;
    if (next === start) break;
    start = next;
  }
  mkdirSync(join(file, '..'), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    const prefix = Buffer.alloc(start);
    prefix.write(MAGIC, 0, 'latin1');
    prefix.writeUInt32LE(header.length, 8);
    header.copy(prefix, 12);
    writeSync(fd, prefix);
    const pad = new Uint8Array(ALIGN);
    for (const b of blobs) {
      writeSync(fd, b);
      const rest = (ALIGN - (b.length % ALIGN)) % ALIGN;
      if (rest) writeSync(fd, pad, 0, rest);
    }
    closeSync(fd);
    renameSync(temp, file);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
}

function shift(entries: HeaderEntry[], by: number): HeaderEntry[] {
  return entries.map((e) =>
    e.kind === 'external'
      ? { ...e, parts: e.parts.map((p) => ({ ...p, offset: p.offset + by })) }
      : { ...e, tiles: e.tiles.map((t) => ({ ...t, offset: t.offset + by })) },
  );
}
