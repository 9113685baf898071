import { roundToDtype } from './float-convert.js';
import type { LlamaConfig } from './llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from './llama-modules.js';
import type { LoraAdapter, LoraPair } from './lora-adapter.js';
import { assembleWeights, EMBED_NAME, expectedModelTensors, LM_HEAD_NAME } from './model-tensors.js';
import type { ModelWeights } from './model-weights.js';
import { parsePeftConfig } from './peft-config.js';
import {
  type SyntheticAdapterSpec,
  type SyntheticModelSpec,
  syntheticConfig,
  syntheticPeftConfigJson,
} from './synthetic-spec.js';
import { isReadableTokenId } from './synthetic-tokenizer.js';

const SQRT3 = Math.sqrt(3);
/** Logit spread after the final norm: top-2 gaps are typically ~1, so greedy picks survive f16 rounding. */
const LOGIT_STD = 5;
/** lm_head rows of unreadable ids (control bytes, specials) are shrunk so greedy text reads well. */
const UNREADABLE_ROW_GAIN = 0.15;
/** Residual-writing projections are damped so the residual stream grows slowly over layers. */
const RESIDUAL_GAIN = 0.5;
/** Target size of an adapter's delta relative to the base projection's output. */
const ADAPTER_GAIN = 0.5;

/** FNV-1a over the seed and a tensor name, so each tensor's stream is independent of fill order. */
function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  // Finalizer (murmur3 fmix32) so similar names start their streams far apart.
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/**
 * Fills `out` with offset + uniform(-amplitude, amplitude) from xorshift32 seeded by `seed`.
 * Plain int32 arithmetic on a typed array (~3 ns per element, no intermediate JS arrays): the
 * TinyLlama shape's 1.1 billion values take seconds. xorshift32's statistical flaws don't matter
 * for weights that only need to be deterministic and roughly uniform.
 */
export function fillUniform(out: Float32Array, seed: number, amplitude: number, offset = 0): Float32Array {
  let s = seed | 0 || 0x9e3779b9;
  const k = amplitude / 2147483648;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = offset + k * s;
  }
  return out;
}

/** Uniform values with standard deviation `std` and mean 0. */
function randomTensor(size: number, seed: number, name: string, std: number): Float32Array {
  return fillUniform(new Float32Array(size), streamSeed(seed, name), std * SQRT3);
}

function scaleUnreadableRows(matrix: Float32Array, vocabSize: number, hidden: number): void {
  for (let id = 0; id < vocabSize; id++) {
    if (isReadableTokenId(id)) continue;
    const row = matrix.subarray(id * hidden, (id + 1) * hidden);
    for (let i = 0; i < hidden; i++) row[i] *= UNREADABLE_ROW_GAIN;
  }
}

function syntheticTensor(config: LlamaConfig, seed: number, name: string, shape: number[]): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 1) {
    // Norm weights near 1: RMSNorm keeps activations at unit scale, with a little per-channel texture.
    return fillUniform(new Float32Array(size), streamSeed(seed, name), 0.1, 1);
  }
  const isVocabMatrix = name === EMBED_NAME || name === LM_HEAD_NAME;
  if (isVocabMatrix) {
    const outputRole = name === LM_HEAD_NAME || config.tieWordEmbeddings;
    const std = outputRole ? LOGIT_STD / Math.sqrt(config.hiddenSize) : 1;
    const matrix = randomTensor(size, seed, name, std);
    if (outputRole) scaleUnreadableRows(matrix, config.vocabSize, config.hiddenSize);
    return matrix;
  }
  const inFeatures = shape[1];
  const writesResidual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
  const gain = writesResidual ? RESIDUAL_GAIN : 1;
  return randomTensor(size, seed, name, gain / Math.sqrt(inFeatures));
}

/**
 * Deterministic, well-conditioned Llama weights: same spec → bit-identical weights.
 * Unit-scale activations at every projection, logits spread over several units (greedy decoding
 * is not decided by rounding), and finite norms over long sequences thanks to pre-norm + damping.
 */
export function syntheticWeights(spec: SyntheticModelSpec): ModelWeights {
  const config = syntheticConfig(spec);
  const tensors = new Map<string, Float32Array>();
  for (const { name, shape } of expectedModelTensors(config)) {
    const data = syntheticTensor(config, spec.seed, name, shape);
    roundToDtype(data, spec.dtype ?? 'F32');
    tensors.set(name, data);
  }
  return assembleWeights(config, (name) => tensors.get(name)!);
}

/**
 * A deterministic LoRA adapter. Unlike PEFT's initialisation B is not zero: the delta is about
 * ADAPTER_GAIN of the base projection's output, whatever rank and alpha, so adapters visibly
 * (and differently) change what the model generates.
 */
export function syntheticAdapter(config: LlamaConfig, spec: SyntheticAdapterSpec): LoraAdapter {
  // Ranks and scales per module exactly as loading the written adapter_config.json gives them.
  const peft = parsePeftConfig(`synthetic adapter ${spec.name}`, syntheticPeftConfigJson(spec), config);
  let maxRank = 0;
  const layers: Array<Partial<Record<TargetModule, LoraPair>>> = [];
  const targets = TARGET_MODULES.filter((m) => spec.targetModules.includes(m));
  for (let l = 0; l < config.numLayers; l++) {
    const layer: Partial<Record<TargetModule, LoraPair>> = {};
    for (const m of targets) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const prefix = `${spec.name}.${l}.${m}`;
      const { rank, scale } = peft.moduleLora(l, m);
      maxRank = Math.max(maxRank, rank);
      const bStd = ADAPTER_GAIN / (Math.abs(scale) * Math.sqrt(rank));
      layer[m] = {
        a: randomTensor(rank * inFeatures, spec.seed, `${prefix}.A`, 1 / Math.sqrt(inFeatures)),
        b: randomTensor(outFeatures * rank, spec.seed, `${prefix}.B`, bStd),
        rank,
        scale,
      };
    }
    layers.push(layer);
  }
  return {
    name: spec.name,
    path: `synthetic:${spec.name}`,
    rank: maxRank,
    alpha: spec.alpha,
    targetModules: targets,
    layers,
  };
}
