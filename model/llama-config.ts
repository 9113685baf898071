/** The parts of a Hugging Face Llama-family `config.json` that Loom's engines need. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      /** YaRN (HF's _compute_yarn_parameters): a ramp between interpolated and kept frequencies. */
      type: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      betaFast: number;
      betaSlow: number;
      /** cos and sin are multiplied by it (HF's attention_factor / mscale). */
      attentionFactor: number;
      truncate: boolean;
    }
  | {
      /**
       * Dynamic NTK: HF keeps the default frequencies until a sequence outgrows
       * max_position_embeddings (which Loom never serves past), then recomputes them from its
       * length. vLLM rotates by a fixed larger base at every length instead.
       */
      type: 'dynamic';
      factor: number;
    };

export interface LlamaConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /**
   * Mistral's `sliding_window`: each token attends only to the last this-many positions. Loom's
   * attention has no window, so a context longer than this is refused (checkContextLength).
   */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** Generation stops at any of these (config.json and generation_config.json merged). */
  eosTokenIds: number[];
}

export class ConfigError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Past this a size in config.json is a corrupt or hostile file, not a model (2^31 − 1: typed-array indices). */
const MAX_CONFIG_INT = 2 ** 31 - 1;

function positiveInt(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_CONFIG_INT) {
    throw new ConfigError(
      file,
      `"${key}" must be a positive integer up to ${MAX_CONFIG_INT}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** A finite number > 0 (JSON has no NaN, but a hand-written config can hold 1e999, i.e. Infinity). */
function positiveNumber(raw: Record<string, unknown>, key: string, file: string, fallback: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(file, `"${key}" must be a finite number above 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Keys transformers' rope validation requires per rope type (a missing one is a KeyError there). */
const ROPE_REQUIRED_KEYS: Record<string, string[]> = {
  linear: ['factor'],
  llama3: ['factor', 'original_max_position_embeddings', 'low_freq_factor', 'high_freq_factor'],
  yarn: ['factor'],
  dynamic: ['factor'],
};
const ROPE_TYPES = Object.keys(ROPE_REQUIRED_KEYS);

/** YaRN's attention factor as HF derives it: 0.1·mscale·ln(scale) + 1, 1 at scale ≤ 1. */
function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function optionalRopeNumber(rs: Record<string, unknown>, key: string, file: string): number | undefined {
  return rs[key] === undefined || rs[key] === null ? undefined : ropeNumber(rs, key, file);
}

/**
 * YaRN as transformers computes it: beta_fast/beta_slow (32/1 when absent or 0, as HF's `or`),
 * original_max_position_embeddings (max_position_embeddings when absent), the attention factor
 * given, or HF's mscale ratio, or 0.1·ln(factor) + 1; `factor` as given (as vLLM and current
 * transformers use it; some 4.x releases put max_position_embeddings / original in its place).
 * vLLM's own keys for the same things (attn_factor, extrapolation_factor) are not HF's: refused
 * unless they change nothing.
 */
function parseYarn(
  rs: Record<string, unknown>,
  factor: number,
  maxPositions: number,
  file: string,
): RopeScaling {
  for (const key of ['attn_factor', 'extrapolation_factor'])
    if (rs[key] !== undefined && rs[key] !== 1)
      throw new ConfigError(
        file,
        `rope_scaling.${key} is vLLM's, not transformers' (which ignores it): use attention_factor, or leave it at 1`,
      );
  const truncate = rs.truncate ?? true;
  if (typeof truncate !== 'boolean')
    throw new ConfigError(
      file,
      `rope_scaling.truncate must be true or false, got ${JSON.stringify(truncate)}`,
    );
  const mscale = optionalRopeNumber(rs, 'mscale', file);
  const mscaleAllDim = optionalRopeNumber(rs, 'mscale_all_dim', file);
  const attentionFactor =
    optionalRopeNumber(rs, 'attention_factor', file) ??
    (mscale && mscaleAllDim
      ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim)
      : yarnMscale(factor));
  return {
    type: 'yarn',
    factor,
    originalMaxPositionEmbeddings:
      optionalRopeNumber(rs, 'original_max_position_embeddings', file) ?? maxPositions,
    betaFast: rs.beta_fast ? ropeNumber(rs, 'beta_fast', file) : 32,
    betaSlow: rs.beta_slow ? ropeNumber(rs, 'beta_slow', file) : 1,
    attentionFactor,
    truncate,
  };
}

function ropeNumber(rs: Record<string, unknown>, key: string, file: string): number {
  const value = rs[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(
      file,
      `rope_scaling.${key} must be a finite number above 0, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function parseRopeScaling(raw: unknown, maxPositions: number, file: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, `rope_scaling must be an object or null, got ${JSON.stringify(raw)}`);
  }
  const rs = raw as Record<string, unknown>;
  const kind = rs.rope_type ?? rs.type;
  if (kind === 'default') return null;
  if (typeof kind !== 'string' || !ROPE_TYPES.includes(kind)) {
    throw new ConfigError(
      file,
      `rope_scaling type "${String(kind)}" is not supported (${ROPE_TYPES.join(', ')})`,
    );
  }
  const missing = ROPE_REQUIRED_KEYS[kind].filter((key) => !(key in rs));
  if (missing.length > 0) {
    throw new ConfigError(
      file,
      `rope_scaling of type "${kind}" lacks ${missing.join(', ')} (transformers refuses it too)`,
    );
  }
  const factor = ropeNumber(rs, 'factor', file);
  if (kind === 'linear') return { type: 'linear', factor };
  if (kind === 'dynamic') return { type: 'dynamic', factor };
  if (kind === 'yarn') return parseYarn(rs, factor, maxPositions, file);
  const lowFreqFactor = ropeNumber(rs, 'low_freq_factor', file);
  const highFreqFactor = ropeNumber(rs, 'high_freq_factor', file);
  // Equal factors divide by zero in the smoothing band; transformers only warns, then computes NaN.
  if (highFreqFactor === lowFreqFactor) {
    throw new ConfigError(
      file,
      `rope_scaling.high_freq_factor equals low_freq_factor (${lowFreqFactor}), which divides by zero`,
    );
  }
  return {
    type: 'llama3',
    factor,
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings: ropeNumber(rs, 'original_max_position_embeddings', file),
  };
}

/** The window attention is limited to, as transformers applies it per model type (Mistral only, here). */
function parseSlidingWindow(raw: Record<string, unknown>, file: string): number | null {
  if (raw.model_type !== 'mistral' || raw.sliding_window === undefined || raw.sliding_window === null)
    return null;
  return positiveInt(raw, 'sliding_window', file);
}

function idList(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

/**
 * Parses config.json (and optionally generation_config.json) of a Llama-family model.
 * Rejects architectures whose layer is not Llama's (RMSNorm, RoPE, GQA, SwiGLU).
 */
export function parseLlamaConfig(
  raw: Record<string, unknown>,
  file = 'config.json',
  generationConfig: Record<string, unknown> = {},
): LlamaConfig {
  const modelType = raw.model_type;
  const supported = ['llama', 'mistral'];
  if (modelType === 'qwen2') {
    throw new ConfigError(
      file,
      'model_type "qwen2" is not supported: its q/k/v projections have biases, which Loom\'s Llama layer lacks',
    );
  }
  if (typeof modelType === 'string' && !supported.includes(modelType)) {
    throw new ConfigError(
      file,
      `model_type "${modelType}" is not a Llama-family model (${supported.join(', ')})`,
    );
  }
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (raw[key] === true) {
      throw new ConfigError(
        file,
        `"${key}" is true: linear-layer biases are not supported by Loom's Llama layer`,
      );
    }
  }
  const hiddenSize = positiveInt(raw, 'hidden_size', file);
  const numHeads = positiveInt(raw, 'num_attention_heads', file);
  const numKvHeads = positiveInt(raw, 'num_key_value_heads', file, numHeads);
  const headDim = positiveInt(raw, 'head_dim', file, Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      file,
      `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  if (headDim % 2 !== 0) throw new ConfigError(file, `head_dim ${headDim} must be even for RoPE`);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ConfigError(file, `hidden_act "${String(act)}" is not supported (silu only)`);

  const maxPositionEmbeddings = positiveInt(raw, 'max_position_embeddings', file, 2048);
  const eos = new Set([...idList(raw.eos_token_id), ...idList(generationConfig.eos_token_id)]);
  const bos = generationConfig.bos_token_id ?? raw.bos_token_id;
  return {
    hiddenSize,
    numLayers: positiveInt(raw, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: positiveInt(raw, 'intermediate_size', file),
    vocabSize: positiveInt(raw, 'vocab_size', file),
    rmsNormEps: positiveNumber(raw, 'rms_norm_eps', file, 1e-6),
    ropeTheta: positiveNumber(raw, 'rope_theta', file, 10000),
    ropeScaling: parseRopeScaling(raw.rope_scaling, maxPositionEmbeddings, file),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    maxPositionEmbeddings,
    slidingWindow: parseSlidingWindow(raw, file),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: [...eos],
  };
}

/**
 * Null when a context of `maxModelLen` tokens is served exactly as transformers would; otherwise
 * the problem, in one line. With a sliding window, HF masks keys more than `sliding_window`
 * positions back; a context no longer than the window never reaches that mask.
 */
export function contextLengthProblem(config: LlamaConfig, maxModelLen: number): string | null {
  if (config.slidingWindow === null || maxModelLen <= config.slidingWindow) return null;
  return `sliding_window is ${config.slidingWindow} but the context would be ${maxModelLen} tokens; Loom's attention has no window, so serve at most ${config.slidingWindow} tokens (--max-model-len ${config.slidingWindow})`;
}
