import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonObject } from './config-file.js';
import { fileExists } from './file-exists.js';
import { checkFiniteStored } from './finite-check.js';
import type { LlamaConfig } from './llama-config.js';
import { isTargetModule, moduleShape, TARGET_MODULES, type TargetModule } from './llama-modules.js';
import type { LoraAdapter } from './lora-adapter.js';
import { ModelFormatError } from './model-format-error.js';
import { parsePeftConfig } from './peft-config.js';
import { SafetensorsFile } from './safetensors.js';
import { type StoredLoraAdapter, type StoredLoraPair, widenAdapter } from './stored-adapter.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/**
 * PEFT's tensor names: `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, also
 * without `.weight` and with an adapter-name segment (`.lora_A.default.weight`).
 */
const LORA_NAME =
  /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.([A-Za-z0-9_]+)\.lora_(A|B)(?:\.([A-Za-z0-9_-]+))?$/;

interface ParsedName {
  layer: number;
  module: string;
  group: string;
  matrix: 'A' | 'B';
  adapterName: string | null;
}

function parseTensorName(name: string): ParsedName | null {
  const stem = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
  const m = LORA_NAME.exec(stem);
  if (!m) return null;
  return {
    layer: Number(m[1]),
    group: m[2],
    module: m[3],
    matrix: m[4] as 'A' | 'B',
    adapterName: m[5] ?? null,
  };
}

function expectedGroup(module: TargetModule): string {
  return module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Loads a PEFT LoRA directory (adapter_config.json + adapter_model.safetensors) for `config`'s
 * base model. Every mismatch with the base model is a ModelFormatError naming the file, the
 * tensor and the expected vs actual shape.
 */
export async function loadAdapter(name: string, dir: string, config: LlamaConfig): Promise<LoraAdapter> {
  return widenAdapter(await readAdapterDir(name, dir, config, true));
}

/** loadAdapter's checks, keeping the weights in the file's dtype (the registry's host copies). */
export async function loadStoredAdapter(
  name: string,
  dir: string,
  config: LlamaConfig,
): Promise<StoredLoraAdapter> {
  return readAdapterDir(name, dir, config, true);
}

/**
 * Everything loadAdapter checks — config, tensor names and shapes from the safetensors header —
 * without reading a weight: what registering thousands of adapters at start-up can afford.
 */
export async function checkAdapter(dir: string, config: LlamaConfig): Promise<StoredLoraAdapter> {
  return readAdapterDir('', dir, config, false);
}

/** With `readWeights` false, every A and B is empty (shapes checked, data not read). */
async function readAdapterDir(
  name: string,
  dir: string,
  config: LlamaConfig,
  readWeights: boolean,
): Promise<StoredLoraAdapter> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new ModelFormatError(dir, 'adapter directory does not exist');
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  if (!(await fileExists(configFile))) {
    throw new ModelFormatError(configFile, 'is missing (not a PEFT adapter directory?)');
  }
  const rawConfig = (await readJsonObject(configFile, { optional: false }))!;
  const peft = parsePeftConfig(configFile, rawConfig, config);

  // vLLM's extra vocabulary (--lora-extra-vocab-size): embeddings of tokens the adapter adds,
  // which Loom neither loads nor may skip (the adapter's own tokens would mean nothing).
  for (const extra of ['new_embeddings.safetensors', 'new_embeddings.bin']) {
    const path = join(dir, extra);
    if (await fileExists(path))
      throw new ModelFormatError(
        path,
        'adds tokens to the vocabulary (extra embeddings), which Loom does not load',
      );
  }

  const weightsFile = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!(await fileExists(weightsFile))) {
    const bin = join(dir, 'adapter_model.bin');
    if (await fileExists(bin)) {
      throw new ModelFormatError(
        bin,
        `only ${ADAPTER_WEIGHTS_FILE} is supported (pickle .bin files are not read)`,
      );
    }
    throw new ModelFormatError(weightsFile, 'is missing');
  }

  const file = await SafetensorsFile.open(weightsFile);
  try {
    const fail = (problem: string) => new ModelFormatError(weightsFile, problem);
    const layers: Array<Partial<Record<TargetModule, Partial<StoredLoraPair>>>> = Array.from(
      { length: config.numLayers },
      () => ({}),
    );
    let adapterName: string | null | undefined;
    let numBytes = 0;
    const weights = readWeights ? await file.readAllStored() : null;
    for (const tensor of file.tensors.values()) {
      const parsed = parseTensorName(tensor.name);
      if (!parsed && peft.bias !== 'none' && /\.bias$/.test(tensor.name)) {
        throw fail(
          `tensor "${tensor.name}" is a trained bias (${ADAPTER_CONFIG_FILE} has bias "${peft.bias}"); Loom's Llama layer has no biases to replace`,
        );
      }
      if (!parsed) {
        throw fail(`tensor "${tensor.name}" is not a LoRA A/B matrix of a decoder layer's linear module`);
      }
      if (adapterName !== undefined && parsed.adapterName !== adapterName) {
        throw fail(
          `holds more than one adapter (tensor names use "${adapterName}" and "${parsed.adapterName}")`,
        );
      }
      adapterName = parsed.adapterName;
      const module = parsed.module;
      if (!isTargetModule(module) || parsed.group !== expectedGroup(module)) {
        throw fail(`tensor "${tensor.name}" targets ${parsed.group}.${module}, which Loom does not adapt`);
      }
      if (parsed.layer >= config.numLayers) {
        throw fail(
          `tensor "${tensor.name}" is for layer ${parsed.layer}; the base model has ${config.numLayers}`,
        );
      }
      if (!peft.isTargeted(parsed.layer, module)) {
        throw fail(
          `tensor "${tensor.name}" is for a module that ${ADAPTER_CONFIG_FILE}'s target_modules / exclude_modules / layers_to_transform leave out`,
        );
      }
      const { inFeatures, outFeatures } = moduleShape(config, module);
      const { rank, scale } = peft.moduleLora(parsed.layer, module);
      const expected = parsed.matrix === 'A' ? [rank, inFeatures] : [outFeatures, rank];
      if (tensor.shape.length !== 2 || tensor.shape[0] !== expected[0] || tensor.shape[1] !== expected[1]) {
        const rankSource = rank === peft.rank ? `r=${rank}` : `"rank_pattern" (rank ${rank} for this module)`;
        throw fail(
          `tensor "${tensor.name}" has shape ${shapeText(tensor.shape)} but the base model and ${rankSource} need ${shapeText(expected)}`,
        );
      }
      const pair = layers[parsed.layer][module] ?? { rank, scale };
      layers[parsed.layer][module] = pair;
      const key = parsed.matrix === 'A' ? 'a' : 'b';
      if (pair[key]) throw fail(`lora_${parsed.matrix} of layer ${parsed.layer} ${module} appears twice`);
      const stored = weights?.get(tensor.name);
      if (stored) {
        // A 2-byte tensor is checked on its bit patterns: kept narrow, never widened here.
        checkFiniteStored(weightsFile, tensor.name, stored);
        pair[key] = stored;
      } else {
        pair[key] = { dtype: 'F32', data: new Float32Array(0) };
      }
      numBytes += pair[key].data.byteLength;
    }

    const present = new Set<TargetModule>();
    let maxRank = 0;
    for (let layer = 0; layer < config.numLayers; layer++) {
      for (const module of TARGET_MODULES) {
        if (!peft.isTargeted(layer, module)) continue;
        const pair = layers[layer][module];
        if (!pair?.a || !pair.b) {
          const missing = pair?.a ? 'lora_B' : 'lora_A';
          const group = expectedGroup(module);
          throw fail(
            `tensor "base_model.model.model.layers.${layer}.${group}.${module}.${missing}.weight" is missing`,
          );
        }
        present.add(module);
        maxRank = Math.max(maxRank, pair.rank ?? 0);
      }
    }
    return {
      name,
      path: dir,
      rank: maxRank,
      alpha: peft.alpha,
      targetModules: TARGET_MODULES.filter((m) => present.has(m)),
      layers: layers as Array<Partial<Record<TargetModule, StoredLoraPair>>>,
      numBytes,
    };
  } finally {
    await file.close();
  }
}
