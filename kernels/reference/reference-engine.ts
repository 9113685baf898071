import { type AdapterLayout, writeAdapterRows } from '../../memory/adapter-layout.js';
import { type KvLayout, kvLayout } from '../../memory/kv-layout.js';
import type { PagePool } from '../../memory/page-pool.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { type RopeRotation, ropeRotation } from '../../model/rope-frequencies.js';
import type { StoredLoraAdapter } from '../../model/stored-adapter.js';
import { type AttentionBatch, buildAttentionBatch } from '../attention-batch.js';
import { type Engine, logitRows, logitTokenIndices, type StepPlan } from '../engine.js';
import { buildLoraBatch } from '../lora-batch.js';
import { embed } from './embed.js';
import { writeKv } from './kv-write.js';
import { linear } from './linear.js';
import { loraExpand, loraShrink } from './lora.js';
import { pagedAttention } from './paged-attention.js';
import { rmsNorm } from './rmsnorm.js';
import { applyRope } from './rope.js';
import { siluMul } from './silu-mul.js';

/** What one step's layers share: the flattened tokens and each token's adapter. */
interface StepTokens {
  batch: AttentionBatch;
  adapters: Array<AdapterLayout | null>;
  anyAdapter: boolean;
}

/**
 * The plain-TypeScript f32 engine: every op from this folder, one after another, with page
 * storage in a host Float32Array. Slow by design; it is the oracle the onnx and webgpu engines
 * are tested against, so it follows Hugging Face's LlamaForCausalLM step for step.
 */
export class ReferenceEngine implements Engine {
  readonly kind = 'reference' as const;
  readonly config: LlamaConfig;
  readonly kvLayout: KvLayout;
  private storage: Float32Array;
  private readonly rope: RopeRotation;
  private closed = false;

  private constructor(
    private readonly weights: ModelWeights,
    readonly pool: PagePool,
  ) {
    this.config = weights.config;
    this.kvLayout = kvLayout(weights.config);
    this.rope = ropeRotation(weights.config);
    // Page 0 is the pool's all-zero page: nothing ever writes it, so it stays zero.
    this.storage = new Float32Array(pool.numPages * pool.pageSize);
  }

  static create(weights: ModelWeights, pool: PagePool): ReferenceEngine {
    if (pool.pageSize !== weights.config.hiddenSize)
      throw new Error(`pool page size ${pool.pageSize} ≠ hidden size ${weights.config.hiddenSize}`);
    return new ReferenceEngine(weights, pool);
  }

  async step(plan: StepPlan): Promise<Float32Array> {
    this.assertOpen();
    const { config, weights } = this;
    const tokens = this.flatten(plan);
    const T = tokens.batch.numTokens;
    const ids: number[] = [];
    for (const s of plan.sequences) for (let i = 0; i < s.tokens.length; i++) ids.push(s.tokens[i]);

    let x = embed(weights.embedTokens, config.hiddenSize, ids);
    for (let layer = 0; layer < config.numLayers; layer++) x = this.decoderLayer(x, layer, tokens);

    const rows = logitTokenIndices(plan);
    if (rows.length !== logitRows(plan)) throw new Error('logit rows disagree with the plan');
    const h = config.hiddenSize;
    const picked = new Float32Array(rows.length * h);
    rows.forEach((t, i) => {
      if (t >= T) throw new Error(`logit row ${t} beyond ${T} tokens`);
      picked.set(x.subarray(t * h, (t + 1) * h), i * h);
    });
    const normed = rmsNorm(picked, rows.length, weights.finalNorm, config.rmsNormEps);
    return linear(normed, rows.length, weights.lmHead, h, config.vocabSize);
  }

  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    this.assertOpen();
    writeAdapterRows(this.storage, this.pool.pageSize, layout, adapter);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.storage = new Float32Array(0);
  }

  /** HF LlamaDecoderLayer: pre-norm attention and pre-norm SwiGLU MLP, each with a residual. */
  private decoderLayer(x: Float32Array, layer: number, tokens: StepTokens): Float32Array {
    const { config } = this;
    const lw = this.weights.layers[layer];
    const T = tokens.batch.numTokens;
    const eps = config.rmsNormEps;

    const attnIn = rmsNorm(x, T, lw.inputNorm, eps);
    const q = this.projection(attnIn, layer, 'q_proj', tokens);
    const k = this.projection(attnIn, layer, 'k_proj', tokens);
    const v = this.projection(attnIn, layer, 'v_proj', tokens);
    applyRope(q, T, config.numHeads, config.headDim, tokens.batch.tokenPos, this.rope);
    applyRope(k, T, config.numKvHeads, config.headDim, tokens.batch.tokenPos, this.rope);
    writeKv(this.storage, this.kvLayout, tokens.batch, layer, k, v);
    const attention = pagedAttention(
      q,
      tokens.batch,
      this.storage,
      this.kvLayout,
      layer,
      config.numHeads,
      config.numKvHeads,
      config.headDim,
    );
    const afterAttention = addInto(x, this.projection(attention, layer, 'o_proj', tokens));

    const mlpIn = rmsNorm(afterAttention, T, lw.postAttentionNorm, eps);
    const gate = this.projection(mlpIn, layer, 'gate_proj', tokens);
    const up = this.projection(mlpIn, layer, 'up_proj', tokens);
    const down = this.projection(siluMul(gate, up), layer, 'down_proj', tokens);
    return addInto(afterAttention, down);
  }

  /** Base linear layer plus, per token, its own adapter's LoRA delta where the adapter targets it. */
  private projection(x: Float32Array, layer: number, module: TargetModule, tokens: StepTokens): Float32Array {
    const { inFeatures, outFeatures } = moduleShape(this.config, module);
    const T = tokens.batch.numTokens;
    const y = linear(x, T, this.weights.layers[layer].linear[module], inFeatures, outFeatures);
    if (!tokens.anyAdapter) return y;
    const pageSize = this.pool.pageSize;
    const lora = buildLoraBatch(tokens.adapters, layer, module, inFeatures, outFeatures, pageSize);
    if (lora.numAdapters === 0) return y;
    loraExpand(loraShrink(x, lora, this.storage, pageSize), lora, this.storage, pageSize, y);
    return y;
  }

  private flatten(plan: StepPlan): StepTokens {
    const batch = buildAttentionBatch(plan);
    const adapters: Array<AdapterLayout | null> = [];
    for (const s of plan.sequences) for (let i = 0; i < s.tokens.length; i++) adapters.push(s.adapter);
    return { batch, adapters, anyAdapter: adapters.some((a) => a !== null) };
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('reference engine is closed');
  }
}

/** residual + delta, elementwise, into residual (which the caller no longer needs). */
function addInto(residual: Float32Array, delta: Float32Array): Float32Array {
  for (let i = 0; i < residual.length; i++) residual[i] += delta[i];
  return residual;
}
