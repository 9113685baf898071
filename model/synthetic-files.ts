import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DTYPE_BYTES, roundToDtype, type TensorDtype } from './float-convert.js';
import type { LlamaConfig } from './llama-config.js';
import { moduleName, moduleShape, TARGET_MODULES } from './llama-modules.js';
import type { LoraAdapter } from './lora-adapter.js';
import { weightTensors } from './model-tensors.js';
import type { ModelWeights } from './model-weights.js';
import { type TensorToWrite, writeSafetensors } from './safetensors-writer.js';
import {
  type SyntheticAdapterSpec,
  type SyntheticModelSpec,
  syntheticConfigJson,
  syntheticGenerationConfigJson,
  syntheticPeftConfigJson,
} from './synthetic-spec.js';
import { byteTokenizerConfigJson, byteTokenizerJson } from './synthetic-tokenizer.js';
import { syntheticAdapter, syntheticWeights } from './synthetic-weights.js';

export interface WriteModelOptions {
  /** Split the weights over this many files with a model.safetensors.index.json (default 1). */
  shards?: number;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Splits tensors into `count` contiguous groups of roughly equal bytes (each non-empty). */
function splitIntoShards(tensors: TensorToWrite[], count: number): TensorToWrite[][] {
  const bytes = (t: TensorToWrite) => t.data.length * DTYPE_BYTES[t.dtype];
  const total = tensors.reduce((sum, t) => sum + bytes(t), 0);
  const shards: TensorToWrite[][] = [[]];
  let written = 0;
  tensors.forEach((t, i) => {
    const remainingTensors = tensors.length - i;
    const remainingShards = count - shards.length;
    const current = shards[shards.length - 1];
    const full = written >= (total * shards.length) / count;
    if (current.length > 0 && remainingShards > 0 && (full || remainingTensors <= remainingShards))
      shards.push([]);
    shards[shards.length - 1].push(t);
    written += bytes(t);
  });
  return shards;
}

/**
 * Writes a complete Hugging Face model directory for `spec`: config.json, generation_config.json,
 * tokenizer.json, tokenizer_config.json (with a chat template) and the safetensors weights.
 * Returns the in-memory weights, which equal what loadModel reads back.
 */
export async function writeSyntheticModel(
  dir: string,
  spec: SyntheticModelSpec,
  options: WriteModelOptions = {},
): Promise<ModelWeights> {
  await mkdir(dir, { recursive: true });
  const dtype: TensorDtype = spec.dtype ?? 'F32';
  const weights = syntheticWeights(spec);
  const tensors = weightTensors(weights).map((t) => ({ ...t, dtype }));
  const metadata = { format: 'pt' };
  const shardCount = Math.min(options.shards ?? 1, tensors.length);
  if (shardCount <= 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, metadata);
  } else {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    const shards = splitIntoShards(tensors, shardCount);
    for (const [i, shard] of shards.entries()) {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      await writeSafetensors(join(dir, name), shard, metadata);
      for (const t of shard) {
        weightMap[t.name] = name;
        totalSize += t.data.length * DTYPE_BYTES[dtype];
      }
    }
    await writeJson(join(dir, 'model.safetensors.index.json'), {
      metadata: { total_size: totalSize },
      weight_map: weightMap,
    });
  }
  await writeJson(join(dir, 'config.json'), syntheticConfigJson(spec));
  await writeJson(join(dir, 'generation_config.json'), syntheticGenerationConfigJson());
  await writeJson(join(dir, 'tokenizer.json'), byteTokenizerJson(spec.vocabSize));
  await writeJson(join(dir, 'tokenizer_config.json'), byteTokenizerConfigJson());
  return weights;
}

/**
 * Writes a PEFT adapter directory (adapter_config.json + adapter_model.safetensors with PEFT's
 * tensor names) for `spec` on `config`'s base model; returns the in-memory adapter it holds.
 */
export async function writeSyntheticAdapter(
  dir: string,
  config: LlamaConfig,
  spec: SyntheticAdapterSpec,
  baseModelName = 'loom-synthetic',
  dtype: TensorDtype = 'F32',
): Promise<LoraAdapter> {
  await mkdir(dir, { recursive: true });
  const adapter = { ...syntheticAdapter(config, spec), path: dir };
  // The returned adapter holds what the file holds: values rounded to a 2-byte dtype.
  for (const layer of adapter.layers)
    for (const pair of Object.values(layer)) {
      roundToDtype(pair.a, dtype);
      roundToDtype(pair.b, dtype);
    }
  const tensors: TensorToWrite[] = [];
  adapter.layers.forEach((layer, l) => {
    for (const m of TARGET_MODULES) {
      const pair = layer[m];
      if (!pair) continue;
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const stem = `base_model.model.${moduleName(l, m)}`;
      tensors.push({
        name: `${stem}.lora_A.weight`,
        dtype,
        shape: [pair.rank, inFeatures],
        data: pair.a,
      });
      tensors.push({
        name: `${stem}.lora_B.weight`,
        dtype,
        shape: [outFeatures, pair.rank],
        data: pair.b,
      });
    }
  });
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  await writeJson(join(dir, 'adapter_config.json'), syntheticPeftConfigJson(spec, baseModelName));
  return adapter;
}
