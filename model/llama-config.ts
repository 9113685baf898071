/** The parts of a Hugging Face Llama-family `config.json` that Loom's engines need. */
export interface RopeScaling {
  type: 'llama3' | 'linear';
  factor: number;
  /** llama3 only */
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

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

function positiveInt(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ConfigError(file, `"${key}" must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
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
  const supported = ['llama', 'mistral', 'qwen2'];
  if (typeof modelType === 'string' && !supported.includes(modelType)) {
    throw new ConfigError(
      file,
      `model_type "${modelType}" is not a Llama-family model (${supported.join(', ')})`,
    );
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

  let ropeScaling: RopeScaling | null = null;
  const rs = raw.rope_scaling as Record<string, unknown> | null | undefined;
  if (rs && typeof rs === 'object') {
    const kind = rs.rope_type ?? rs.type;
    const factor = typeof rs.factor === 'number' ? rs.factor : 1;
    if (kind === 'llama3') {
      ropeScaling = {
        type: 'llama3',
        factor,
        lowFreqFactor: Number(rs.low_freq_factor ?? 1),
        highFreqFactor: Number(rs.high_freq_factor ?? 4),
        originalMaxPositionEmbeddings: Number(rs.original_max_position_embeddings ?? 8192),
      };
    } else if (kind === 'linear') {
      ropeScaling = {
        type: 'linear',
        factor,
        lowFreqFactor: 1,
        highFreqFactor: 1,
        originalMaxPositionEmbeddings: 0,
      };
    } else if (kind !== 'default') {
      throw new ConfigError(file, `rope_scaling type "${String(kind)}" is not supported (llama3, linear)`);
    }
  }
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
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-6,
    ropeTheta: typeof raw.rope_theta === 'number' ? raw.rope_theta : 10000,
    ropeScaling,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    maxPositionEmbeddings: positiveInt(raw, 'max_position_embeddings', file, 2048),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: [...eos],
  };
}
