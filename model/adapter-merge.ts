import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonObject } from './config-file.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './load-adapter.js';
import { ModelFormatError } from './model-format-error.js';
import { readSafetensors } from './safetensors.js';
import { type TensorToWrite, writeSafetensors } from './safetensors-writer.js';

/** LoRAX's merge strategies (PEFT's functions of the same names). */
export const MERGE_STRATEGIES = ['linear', 'ties', 'dare_linear', 'dare_ties'] as const;
export type MergeStrategy = (typeof MERGE_STRATEGIES)[number];
export const MAJORITY_SIGN_METHODS = ['total', 'frequency'] as const;
export type MajoritySignMethod = (typeof MAJORITY_SIGN_METHODS)[number];

export interface MergeSpec {
  /** One per source adapter. */
  weights: readonly number[];
  strategy: MergeStrategy;
  /**
   * ties: the fraction of each tensor's values kept, by magnitude (1 and above: all); DARE: the
   * chance that each value is kept (then divided by it), so it must be above 0.
   */
  density: number;
  majoritySignMethod: MajoritySignMethod;
  /**
   * DARE: what its drops are drawn from. The same key gives the same drops, so one merge asked
   * twice (or after a restart) is one adapter; PEFT, which LoRAX runs, draws from torch's global
   * generator, so its drops differ from run to run and from Loom's.
   */
  dropKey?: string;
}

/**
 * `count` uniform 32-bit words from a stream keyed by `key`: AES-128-CTR's keystream (over
 * zeros), deterministic, fast, and with no state shared between tensors.
 */
function dropWords(key: string, count: number): Uint32Array {
  const digest = createHash('sha256').update(key).digest();
  const cipher = createCipheriv('aes-128-ctr', digest.subarray(0, 16), digest.subarray(16, 32));
  const bytes = Buffer.concat([cipher.update(Buffer.alloc(count * 4)), cipher.final()]);
  return new Uint32Array(bytes.buffer, bytes.byteOffset, count);
}

/**
 * DARE's random pruning with rescaling (PEFT's `random_pruning`, rescale on): each value kept with
 * chance `density` and divided by it, the rest 0.
 */
function pruneAtRandom(values: Float32Array, density: number, key: string): Float32Array {
  if (!(density > 0)) throw new Error(`DARE needs a density above 0, got ${density}`);
  if (density >= 1) return values;
  const words = dropWords(key, values.length);
  const threshold = density * 4294967296;
  const out = new Float32Array(values.length);
  for (let e = 0; e < values.length; e++) if (words[e] < threshold) out[e] = values[e] / density;
  return out;
}

/**
 * ties' magnitude pruning (PEFT's, as LoRAX runs it): the floor(density · n) values of largest
 * magnitude kept, the rest 0; density ≥ 1 keeps all.
 */
function pruneByMagnitude(values: Float32Array, density: number): Float32Array {
  if (density >= 1) return values;
  const keep = Math.floor(density * values.length);
  const out = new Float32Array(values.length);
  if (keep === 0) return out;
  // Ties at the cut go to the lower index, as a stable sort of the magnitudes would keep them.
  const order = Array.from(values.keys()).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]) || a - b);
  for (let i = 0; i < keep; i++) out[order[i]] = values[order[i]];
  return out;
}

/**
 * One tensor merged over the adapters that hold it, as LoRAX merges each lora_A and lora_B
 * apart: linear, Σ wᵢ·tᵢ; ties, each tᵢ pruned, a majority sign elected per element (of Σ tᵢ, or
 * of the count of signs), then the mean of the weighted values that carry that sign. The DARE
 * strategies are these two after each tᵢ is pruned at random; `streams[i]` names tᵢ's drops
 * (with spec.dropKey), so a tensor's drops do not depend on which others are merged beside it.
 */
export function mergeTensor(
  tensors: readonly Float32Array[],
  weights: readonly number[],
  spec: MergeSpec,
  streams: readonly string[] = tensors.map((_, i) => String(i)),
) {
  const n = tensors[0].length;
  const out = new Float32Array(n);
  const dare = spec.strategy === 'dare_linear' || spec.strategy === 'dare_ties';
  const inputs = dare
    ? tensors.map((t, i) => pruneAtRandom(t, spec.density, `${spec.dropKey ?? ''}\n${streams[i]}`))
    : tensors;
  if (spec.strategy === 'linear' || spec.strategy === 'dare_linear') {
    inputs.forEach((t, i) => {
      for (let e = 0; e < n; e++) out[e] += weights[i] * t[e];
    });
    return out;
  }
  const pruned = dare ? inputs : inputs.map((t) => pruneByMagnitude(t, spec.density));
  for (let e = 0; e < n; e++) {
    let vote = 0;
    for (const t of pruned) vote += spec.majoritySignMethod === 'total' ? t[e] : Math.sign(t[e]);
    const majority = vote >= 0 ? 1 : -1;
    let sum = 0;
    let count = 0;
    pruned.forEach((t, i) => {
      if (Math.sign(t[e]) !== majority) return;
      sum += weights[i] * t[e];
      count++;
    });
    out[e] = sum / Math.max(count, 1);
  }
  return out;
}

/** The merged adapter's config: the first's, its target modules the union of all (LoRAX's). */
function mergedConfig(dirs: readonly string[], configs: Record<string, unknown>[]): Record<string, unknown> {
  const ranks = new Set(configs.map((c) => c.r));
  if (ranks.size > 1)
    throw new ModelFormatError(
      dirs.join(', '),
      `unable to merge adapters, their configs have different ranks: ${[...ranks].join(', ')}`,
    );
  const targets = configs.map((c) => c.target_modules);
  let union: unknown = targets[0];
  if (targets.every((t) => Array.isArray(t))) union = [...new Set(targets.flat() as string[])].sort();
  else if (!targets.every((t) => t === targets[0]))
    throw new ModelFormatError(
      dirs.join(', '),
      'unable to merge adapters whose target_modules are patterns that differ (a union is not defined)',
    );
  return { ...configs[0], target_modules: union };
}

/**
 * Writes the merge of the PEFT adapters in `dirs` to `outDir` (adapter_config.json and f32
 * adapter_model.safetensors), as LoRAX merges adapters per request: every tensor name merged over
 * the adapters that hold it, with their weights. The files appear whole or not at all (written
 * aside, then renamed), so a reader never sees half of them.
 */
export async function writeMergedAdapter(
  dirs: readonly string[],
  spec: MergeSpec,
  outDir: string,
): Promise<void> {
  if (dirs.length === 0 || spec.weights.length !== dirs.length)
    throw new Error(`writeMergedAdapter: ${dirs.length} adapters, ${spec.weights.length} weights`);
  const configs: Record<string, unknown>[] = [];
  for (const dir of dirs)
    configs.push((await readJsonObject(join(dir, ADAPTER_CONFIG_FILE), { optional: false }))!);
  const config = mergedConfig(dirs, configs);
  const files = await Promise.all(dirs.map((dir) => readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE))));
  const names = [...new Set(files.flatMap((f) => [...f.keys()]))].sort();
  const tensors: TensorToWrite[] = names.map((name) => {
    const holders = files.flatMap((f, i) => {
      const t = f.get(name);
      return t ? [{ t, weight: spec.weights[i], dir: dirs[i], stream: `${i}\n${name}` }] : [];
    });
    const shape = holders[0].t.shape;
    const other = holders.find((h) => h.t.shape.join() !== shape.join());
    if (other)
      throw new ModelFormatError(
        join(other.dir, ADAPTER_WEIGHTS_FILE),
        `tensor ${name} is [${other.t.shape.join(', ')}], the other adapter's [${shape.join(', ')}]: unable to merge`,
      );
    const data = mergeTensor(
      holders.map((h) => h.t.data),
      holders.map((h) => h.weight),
      spec,
      holders.map((h) => h.stream),
    );
    return { name, dtype: 'F32', shape, data };
  });
  const staging = `${outDir}.partial-${process.pid}-${Date.now()}`;
  await mkdir(staging, { recursive: true });
  try {
    await writeSafetensors(join(staging, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
    await writeFile(join(staging, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
    await rm(outDir, { recursive: true, force: true });
    await rename(staging, outDir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
