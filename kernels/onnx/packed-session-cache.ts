import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { TargetModule } from '../../model/llama-modules.js';
import type { WeightFormat } from '../weight-quantization.js';
import { dropRepeatedInitializers } from './saved-model-repair.js';
import type { WeightCacheLocation } from './weight-cache.js';

/**
 * The step graph's session as onnxruntime optimized and packed it, kept on disk so the next start
 * maps it instead of building it: onnxruntime writes the optimized model with every initializer,
 * the packed Gemm weights included, in one external data file
 * (`session.save_external_prepacked_constant_initializers`), and a session loaded from that model
 * maps the packed weights from the file. At the TinyLlama shape (f32, LoRA on all modules) a
 * server answered /health in ~6 s instead of ~14 s, holding ~0.46 GB anonymous memory instead of
 * 4.3 GB (the packed weights are file-backed pages the first request reads in, which the kernel
 * can share and evict), with the same logits (bench/results/startup-packed-cache.md). The price
 * is disk: the data file holds the weights as the graph had them beside their packed form, about
 * twice their size (8.3 GB at that shape in f32), and the start that saves takes ~3× as long.
 *
 * One slot per checkpoint, weight format and set of LoRA modules, so a new Loom, onnxruntime,
 * CPU or pool size replaces the slot's entry instead of adding one; within it, manifest.json holds
 * the key of what was saved (the graph's bytes, which name every weight's file and offset, the
 * checkpoint's identity, onnxruntime's version and the CPU, since MLAS packs for the ISA it runs
 * on). Anything else misses, and a miss saves anew.
 */
const CACHE_VERSION = 1;
const MODEL_FILE = 'model.onnx';
const DATA_FILE = 'model.data';
const MANIFEST_FILE = 'manifest.json';

export interface PackedSessionRequest {
  /** Where caches live and the checkpoint's identity (weight-cache.ts). */
  location: WeightCacheLocation;
  weightFormat: WeightFormat;
  loraModules: readonly TargetModule[];
  /** The step graph, as buildStepGraph made it. */
  graph: Uint8Array;
  options: ort.InferenceSession.SessionOptions;
  /** What saving may write, about: the disk must have it free (plus a margin) or nothing is saved. */
  expectedBytes: number;
}

export interface PackedSession {
  session: ort.InferenceSession;
  /** What became of the cache, for the start-up log. */
  note: string;
}

interface Manifest {
  key: string;
  onnxruntime: string;
  savedAt: string;
  dataBytes: number;
}

/** The slot's folder: one per checkpoint, weight format and set of LoRA modules. */
export function packedSessionSlot(
  location: WeightCacheLocation,
  weightFormat: WeightFormat,
  loraModules: readonly TargetModule[],
): string {
  const id = createHash('sha256')
    .update(`${location.checkpoint} ${weightFormat} ${loraModules.join(',')}`)
    .digest('hex')
    .slice(0, 24);
  return join(location.dir, `packed-${weightFormat}-${id}`);
}

/** What the saved session must have been made from to be used in place of building this one. */
export function packedSessionKey(request: PackedSessionRequest): string {
  return createHash('sha256')
    .update(`v${CACHE_VERSION} ${ort.env.versions.common} ${request.location.checkpoint}\n`)
    .update(`${request.options.graphOptimizationLevel ?? 'all'}\n${cpuIdentity()}\n`)
    .update(request.graph)
    .digest('hex');
}

/** The CPU the packed layout was made for: its model and ISA flags where Linux lists them. */
export function cpuIdentity(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = (key: string) => info.match(new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm'))?.[1] ?? '';
    const flags = line('flags') || line('Features');
    if (flags) return `${process.arch} ${line('model name')} ${flags}`;
  } catch {
    // Not Linux: the model name below stands for the ISA.
  }
  return `${process.arch} ${cpus()[0]?.model ?? 'unknown'}`;
}

/**
 * The step graph's session: mapped from the slot when it holds this key, else built from the
 * graph while onnxruntime saves it into the slot for the next start. Saving is skipped (the
 * session is still built) when the disk lacks room; a saved model that fails to load is
 * dropped and built again.
 */
export async function createPackedSession(request: PackedSessionRequest): Promise<PackedSession> {
  const slot = packedSessionSlot(request.location, request.weightFormat, request.loraModules);
  const key = packedSessionKey(request);
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  let why = 'none saved yet';
  const manifest = readManifest(slot);
  if (manifest && manifest.key === key) {
    try {
      const session = await ort.InferenceSession.create(join(slot, MODEL_FILE), loadOptions(request.options));
      return {
        session,
        note: `packed weights mapped from ${slot} (${gigabytes(manifest.dataBytes)} GB) in ${seconds()} s`,
      };
    } catch (error) {
      why = `the saved one did not load (${firstLine(error)})`;
    }
  } else if (manifest) why = 'the saved one was made for another graph, onnxruntime or CPU';

  const room = freeBytes(request.location.dir);
  const needed = request.expectedBytes + 2 ** 30;
  if (room !== null && room < needed) {
    const session = await ort.InferenceSession.create(request.graph, request.options);
    return {
      session,
      note: `packed weights not saved (${why}): about ${gigabytes(needed)} GB needed, ${gigabytes(room)} GB free in ${request.location.dir}`,
    };
  }
  const staging = `${slot}.saving-${process.pid}`;
  removeAbandoned(request.location.dir);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(request.graph, saveOptions(request.options, staging));
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    // Saving itself may be what failed (a full disk): a session that saves nothing may still build.
    session = await ort.InferenceSession.create(request.graph, request.options);
    return { session, note: `packed weights not saved (${firstLine(error)})` };
  }
  try {
    const modelPath = join(staging, MODEL_FILE);
    writeFileSync(modelPath, dropRepeatedInitializers(readFileSync(modelPath)).bytes);
    // A graph without weights (tests' small ones) gets no data file.
    const dataFile = join(staging, DATA_FILE);
    const dataBytes = existsSync(dataFile) ? statSync(dataFile).size : 0;
    const saved: Manifest = {
      key,
      onnxruntime: ort.env.versions.common,
      savedAt: new Date().toISOString(),
      dataBytes,
    };
    writeFileSync(join(staging, MANIFEST_FILE), `${JSON.stringify(saved, null, 2)}\n`);
    rmSync(slot, { recursive: true, force: true });
    renameSync(staging, slot);
    return {
      session,
      note: `packed weights saved to ${slot} (${gigabytes(dataBytes)} GB; ${why}) in ${seconds()} s: the next start maps them`,
    };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    return { session, note: `packed weights built; could not keep them in ${slot}: ${firstLine(error)}` };
  }
}

/** Loading the saved model: its weights sit in its own data file, its graph is already optimized. */
function loadOptions(options: ort.InferenceSession.SessionOptions): ort.InferenceSession.SessionOptions {
  const session = { ...(options.extra?.session as Record<string, string> | undefined) };
  delete session.model_external_initializers_file_folder_path;
  return {
    ...options,
    graphOptimizationLevel: 'disabled',
    externalData: undefined,
    extra: { ...options.extra, session },
  };
}

function saveOptions(
  options: ort.InferenceSession.SessionOptions,
  folder: string,
): ort.InferenceSession.SessionOptions {
  return {
    ...options,
    optimizedModelFilePath: join(folder, MODEL_FILE),
    extra: {
      ...options.extra,
      session: {
        ...(options.extra?.session as Record<string, string> | undefined),
        optimized_model_external_initializers_file_name: DATA_FILE,
        // Constants of a few KB stay in the model; the weights (packed or not) go to the data file.
        optimized_model_external_initializers_min_size_in_bytes: '1024',
        save_external_prepacked_constant_initializers: '1',
      },
    },
  };
}

function readManifest(slot: string): Manifest | null {
  try {
    const manifest = JSON.parse(readFileSync(join(slot, MANIFEST_FILE), 'utf8')) as Manifest;
    // A missing data file shows when the model loads (and the slot is then saved anew).
    if (!existsSync(join(slot, MODEL_FILE))) return null;
    return manifest;
  } catch {
    return null;
  }
}

/** Staging folders whose process is gone (killed while saving): each may hold gigabytes. */
function removeAbandoned(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.match(/^packed-.*\.saving-(\d+)$/)?.[1] ?? Number.NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !isAlive(pid))
      rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function freeBytes(dir: string): number | null {
  try {
    mkdirSync(dir, { recursive: true });
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function gigabytes(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(1);
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0];
}
