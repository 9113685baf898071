import { type AdapterLayout, fillAdapterPages } from '../../memory/adapter-layout.js';
import { type KvLayout, kvLayout } from '../../memory/kv-layout.js';
import type { PagePool } from '../../memory/page-pool.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { ropeRotation } from '../../model/rope-frequencies.js';
import type { StoredLoraAdapter } from '../../model/stored-adapter.js';
import {
  type Engine,
  type EngineFailure,
  logitRows,
  logitTokenIndices,
  type RowSampling,
  type SampledStep,
  type StepPlan,
} from '../engine.js';
import { collectLogprobs, sampleInParts, widenForLogprobs } from '../logprob-rows.js';
import { AdapterSlotTable, slotEntry } from './adapter-slots.js';
import {
  createSplitBuffer,
  destroySplit,
  type SplitBuffer,
  type StorageDtype,
  writeBuffer,
  writeSplit,
} from './buffers.js';
import { createWebGpuContext, type WebGpuContext, WebGpuOutOfMemoryError } from './device.js';
import { type DeviceModel, destroyModel, uploadModel } from './device-model.js';
import { EmbedKernel } from './embed.js';
import { type DeviceWeight, GemmKernel, type WeightLayout } from './gemm.js';
import { LogitEditsKernel, packLogitEdits } from './logit-edits.js';
import { LogprobsKernel, logprobRecordWords, packLogprobRequests, unpackLogprobRecord } from './logprobs.js';
import { LoraExpandKernel } from './lora-expand.js';
import { LoraShrinkKernel } from './lora-shrink.js';
import {
  attentionChunkPairs,
  chunksOfPairs,
  KvWriteKernel,
  PagedAttentionKernel,
} from './paged-attention.js';
import { RmsNormKernel } from './rmsnorm.js';
import { RopeKernel } from './rope.js';
import { packSampling, SampleKernel } from './sample.js';
import { ScratchBuffers } from './scratch-buffers.js';
import { SiluMulKernel } from './silu-mul.js';
import { prepareStep, type StepState } from './step-state.js';

export interface WebGpuEngineOptions {
  /** An open device to use (not destroyed by close() unless ownContext); by default the engine opens its own. */
  context?: WebGpuContext;
  /** close() destroys `context` too: the caller hands over a device it opened to inspect the adapter. */
  ownContext?: boolean;
  /**
   * Cap on one scratch buffer's bytes; a step needing more fails with WebGpuOutOfMemoryError
   * (tests force allocation failures with it). Default: what the device can bind.
   */
  maxScratchBytes?: number;
  /**
   * Storage of linear weights (and an untied lm_head): f32, f16 where the device has shader-f16,
   * bf16, or int8/int4 codes (block-quantized at upload, dequantized in the gemm kernels).
   * Default f32.
   */
  weightDtype?: StorageDtype;
  /** Cap on one binding's bytes (tests force splitting with it); default the device's limit. */
  maxChunkBytes?: number;
  /** Device layout of linear weights (see gemm.wgsl); default HF's out-in. */
  weightLayout?: WeightLayout;
  /** Logit rows one submit computes (tests force splitting with it); default what one scratch buffer holds. */
  maxLogitRows?: number;
  /** Largest write of an adapter upload (tests force splitting with it); default UPLOAD_PIECE_BYTES. */
  uploadPieceBytes?: number;
}

/**
 * The WGSL engine: the model's weights and the page pool live on the device, and a step is one
 * command encoder, one compute pass and one submit; only the logits come back.
 */
export class WebGpuEngine implements Engine {
  readonly kind = 'webgpu' as const;
  readonly config: LlamaConfig;
  readonly kvLayout: KvLayout;
  private readonly scratch: ScratchBuffers;
  private readonly gemm: GemmKernel;
  private readonly norm: RmsNormKernel;
  private readonly embed: EmbedKernel;
  private readonly siluMul: SiluMulKernel;
  private readonly rope: RopeKernel;
  private readonly kvWrite: KvWriteKernel;
  private readonly attention: PagedAttentionKernel;
  private readonly shrink: LoraShrinkKernel;
  private readonly expand: LoraExpandKernel;
  private readonly sampler: SampleKernel;
  private readonly logitEdits: LogitEditsKernel;
  private readonly logprobs: LogprobsKernel;
  /** Host staging for adapter uploads, one piece long (writeAdapter). */
  private uploadPiece = new Float32Array(0);
  private readonly uploadPieceBytes: number;
  /** Resident adapters' page tables on the device, written by writeAdapter and releaseAdapter only. */
  readonly adapterSlots: AdapterSlotTable;
  private readonly maxScratchBytes: number;
  private readonly maxLogitRows: number;
  private closed = false;

  private constructor(
    readonly ctx: WebGpuContext,
    private readonly ownsContext: boolean,
    private readonly model: DeviceModel,
    private readonly storage: SplitBuffer,
    readonly pool: PagePool,
    config: LlamaConfig,
    maxScratchBytes: number | undefined,
    maxLogitRows: number | undefined,
    uploadPieceBytes: number | undefined,
  ) {
    this.config = config;
    this.uploadPieceBytes = uploadPieceBytes ?? UPLOAD_PIECE_BYTES;
    this.maxScratchBytes = Math.min(
      maxScratchBytes ?? Number.POSITIVE_INFINITY,
      ctx.limits.maxBufferSize,
      ctx.maxBindingBytes,
    );
    this.maxLogitRows = Math.max(
      1,
      Math.min(
        maxLogitRows ?? Number.POSITIVE_INFINITY,
        Math.floor(this.maxScratchBytes / (config.vocabSize * 4)),
      ),
    );
    this.kvLayout = kvLayout(config);
    this.scratch = new ScratchBuffers(ctx);
    this.gemm = new GemmKernel(ctx);
    this.norm = new RmsNormKernel(ctx);
    this.embed = new EmbedKernel(ctx);
    this.siluMul = new SiluMulKernel(ctx);
    this.rope = new RopeKernel(ctx, ropeRotation(config), config.maxPositionEmbeddings);
    this.kvWrite = new KvWriteKernel(ctx, storage, this.kvLayout);
    this.attention = new PagedAttentionKernel(
      ctx,
      storage,
      this.kvLayout,
      config.numHeads,
      config.numKvHeads,
      config.headDim,
    );
    this.shrink = new LoraShrinkKernel(ctx, storage);
    this.expand = new LoraExpandKernel(ctx, storage);
    this.sampler = new SampleKernel(ctx);
    this.logitEdits = new LogitEditsKernel(ctx);
    this.logprobs = new LogprobsKernel(ctx);
    this.adapterSlots = new AdapterSlotTable(ctx, storage, config.numLayers);
  }

  static async create(
    weights: ModelWeights,
    pool: PagePool,
    options: WebGpuEngineOptions = {},
  ): Promise<WebGpuEngine> {
    const config = weights.config;
    if (pool.pageSize !== config.hiddenSize)
      throw new Error(`pool page size ${pool.pageSize} ≠ hidden size ${config.hiddenSize}`);
    for (const [name, value] of Object.entries({
      hidden: config.hiddenSize,
      intermediate: config.intermediateSize,
      headDim: config.headDim,
    }))
      if (value % 4 !== 0) throw new Error(`webgpu engine: ${name} ${value} is not a multiple of 4`);
    const ctx = options.context ?? (await createWebGpuContext());
    const model = uploadModel(
      ctx,
      weights,
      options.weightDtype ?? 'f32',
      options.maxChunkBytes,
      options.weightLayout,
    );
    // Fresh buffers are zeroed, so page 0 (the pool's zero page) holds zeros from the start.
    const storage = createSplitBuffer(
      ctx,
      pool.numPages * pool.pageSize,
      pool.pageSize,
      'f32',
      'page-pool',
      options.maxChunkBytes,
    );
    await ctx.finish();
    return new WebGpuEngine(
      ctx,
      !options.context || options.ownContext === true,
      model,
      storage,
      pool,
      config,
      options.maxScratchBytes,
      options.maxLogitRows,
      options.uploadPieceBytes,
    );
  }

  async step(plan: StepPlan): Promise<Float32Array> {
    const bytes = await this.submitStep(plan, ({ numRows, logits }) => ({
      source: logits,
      bytes: numRows * this.config.vocabSize * 4,
    }));
    return new Float32Array(bytes);
  }

  /**
   * A step that samples on the device and reads back one token id per logit row (in the order
   * step() returns rows) instead of the logits: `sampling[i]` is row i's settings and uniform.
   * Log-probabilities the sequences ask for are computed on the device too (logprobs.wgsl, from
   * the logits sample.wgsl drew from), and only their k values per row come back. Prompt rows
   * (SequenceStep.logprobs.promptTargets) get logits and are scored, never sampled. A step whose
   * rows' logits would not fit one buffer (a long prompt scored) runs as several submits.
   */
  async sampleStep(plan: StepPlan, sampling: ReadonlyArray<RowSampling>): Promise<SampledStep> {
    if (sampling.length !== logitRows(plan))
      throw new Error(`sampleStep: ${sampling.length} settings for ${logitRows(plan)} rows`);
    return sampleInParts(plan, sampling, this.maxLogitRows, (part, rows) => this.sampleRows(part, rows));
  }

  /** sampleStep for a plan whose widened rows fit one logits buffer. */
  private async sampleRows(plan: StepPlan, sampling: ReadonlyArray<RowSampling>): Promise<SampledStep> {
    const { wide, rows } = widenForLogprobs(plan);
    const maxTopK = rows.reduce((most, r) => (r.topK === null ? most : Math.max(most, r.topK)), -1);
    const stride = maxTopK < 0 ? 1 : logprobRecordWords(maxTopK);
    const settings = rows.map((r) => (r.sampleRow >= 0 ? sampling[r.sampleRow] : PROMPT_ROW_SAMPLING));
    const bytes = await this.submitStep(wide, ({ pass, numRows, logits }) => {
      const vocab = this.config.vocabSize;
      const ids = this.scratchBuffer('sampled', Math.max(1, numRows) * 4);
      const settingsBuffer = this.scratchUpload('sample-settings', packSampling(settings));
      // Penalties, logit_bias, min_tokens: edited in place for the sampler, raw again for logprobs.
      const packed =
        numRows > 0
          ? packLogitEdits(
              settings.map((s) => s.adjustments),
              vocab,
            )
          : null;
      const edits = packed && {
        list: this.scratchUpload('logit-edits', packed.words),
        saved: this.scratchBuffer('logit-edits-saved', packed.count * 4),
        count: packed.count,
      };
      if (edits) this.logitEdits.encode('apply', pass, logits, vocab, edits);
      if (numRows > 0) this.sampler.encode(pass, logits, numRows, vocab, settingsBuffer, ids);
      if (edits) this.logitEdits.encode('restore', pass, logits, vocab, edits);
      if (maxTopK < 0) return { source: ids, bytes: numRows * 4 };
      const requests = this.scratchUpload('logprob-requests', packLogprobRequests(rows));
      const records = this.scratchBuffer('logprob-records', Math.max(1, numRows) * stride * 4);
      if (numRows > 0) this.logprobs.encode(pass, logits, numRows, vocab, requests, ids, stride, records);
      return { source: records, bytes: numRows * stride * 4 };
    });
    const words = new Uint32Array(bytes);
    const tokens = new Int32Array(sampling.length);
    rows.forEach((r, w) => {
      if (r.sampleRow >= 0) tokens[r.sampleRow] = words[w * stride];
    });
    const scored = collectLogprobs(plan, rows, (w) =>
      unpackLogprobRecord(words, w, stride, rows[w].topK ?? 0),
    );
    return { tokens, ...scored };
  }

  fatalFailure(): EngineFailure | null {
    return this.ctx.lostError;
  }

  /** Records the forward pass and what `finish` adds, submits it, and reads back `finish`'s result. */
  private submitStep(
    plan: StepPlan,
    finish: (forward: ForwardPass) => { source: GPUBuffer; bytes: number },
  ): Promise<ArrayBuffer> {
    this.assertOpen();
    return this.ctx.submitAndRead(
      () => {
        const forward = this.encodeForward(plan);
        const out = finish(forward);
        forward.pass.end();
        return { encoder: forward.encoder, ...out };
      },
      // A failed growth leaves an invalid buffer under its name: start the scratch set afresh.
      () => this.scratch.destroy(),
    );
  }

  /** A scratch buffer, refused with a clear error before the device is asked for more than it can bind. */
  private scratchBuffer(name: string, bytes: number): GPUBuffer {
    if (bytes > this.maxScratchBytes)
      throw new WebGpuOutOfMemoryError(
        `this batch needs ${bytes} bytes of "${name}"; one buffer may hold ${this.maxScratchBytes}`,
      );
    return this.scratch.get(name, bytes);
  }

  private scratchUpload(name: string, data: ArrayBufferView): GPUBuffer {
    const buffer = this.scratchBuffer(name, data.byteLength);
    writeBuffer(this.ctx, buffer, 0, data);
    return buffer;
  }

  /** Records the whole forward pass of `plan` into one open compute pass, logits last. */
  private encodeForward(plan: StepPlan): ForwardPass {
    const { config, model, ctx } = this;
    const state = prepareStep(plan, this.adapterSlots, (name, data) => this.scratchUpload(name, data));
    const T = state.batch.numTokens;
    const H = config.hiddenSize;
    const rows = logitTokenIndices(plan);
    if (rows.length !== logitRows(plan)) throw new Error('logit rows disagree with the plan');
    const ids = new Uint32Array(T);
    let t = 0;
    for (const s of plan.sequences) for (let i = 0; i < s.tokens.length; i++) ids[t++] = s.tokens[i];
    const idBuffer = this.scratchUpload('ids', ids);
    const rowBuffer = this.scratchUpload('logit-rows', Uint32Array.from(rows));
    const x = this.scratchBuffer('x', T * H * 4);
    const normed = this.scratchBuffer('normed', T * H * 4);
    const delta = this.scratchBuffer('delta', T * H * 4);
    const picked = this.scratchBuffer('picked', Math.max(1, rows.length) * H * 4);
    const logits = this.scratchBuffer('logits', Math.max(1, rows.length) * config.vocabSize * 4);
    // Grown once, before any dispatch records it: a buffer replaced mid-pass would be destroyed
    // under dispatches already recorded, and Dawn rejects the whole submit.
    if (state.lora) this.scratchBuffer('lora-v', Math.max(1, state.lora.packed.vLength) * 4);

    const encoder = ctx.device.createCommandEncoder({ label: 'step' });
    const pass = encoder.beginComputePass({ label: 'step' });
    this.embed.encode(pass, idBuffer, T, model.embedTokens, x);
    for (let layer = 0; layer < config.numLayers; layer++) {
      const lw = model.layers[layer];
      // The previous layer's MLP output joins the residual stream inside this norm.
      if (layer === 0) this.norm.encode(pass, x, T, H, lw.inputNorm, config.rmsNormEps, normed);
      else this.norm.encodeAdd(pass, x, delta, T, H, lw.inputNorm, config.rmsNormEps, normed);
      this.attentionBlock(pass, state, layer, normed, delta);
      this.norm.encodeAdd(pass, x, delta, T, H, lw.postAttentionNorm, config.rmsNormEps, normed);
      this.mlpBlock(pass, state, layer, normed, delta);
    }
    this.norm.encodeAdd(pass, x, delta, T, H, model.finalNorm, config.rmsNormEps, normed);
    if (rows.length > 0) {
      const stream: DeviceWeight = {
        rows: T,
        cols: H,
        layout: 'out-in',
        data: { dtype: 'f32', numElements: T * H, chunkElements: T * H, unitElements: H, chunks: [normed] },
        rowStride4: H / 4,
        scales: null,
      };
      this.embed.encode(pass, rowBuffer, rows.length, stream, picked);
      this.gemm.encode(pass, picked, rows.length, model.lmHead, logits);
    }
    return { encoder, pass, numRows: rows.length, logits };
  }

  /**
   * One writeBuffer per run of consecutive pages (an adapter the pool placed contiguously is a few
   * copies), not one per page, and none over UPLOAD_PIECE_BYTES: Dawn stages a larger write in a
   * buffer of its own, allocated and freed per write, which held uploads to 0.3–0.5 GB/s on an
   * H200 host; smaller ones reuse its staging ring. The host side reuses one piece-sized buffer.
   * Then the adapter's slot: its page table, written once here. Both go through the queue, behind
   * any step already submitted.
   */
  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    this.assertOpen();
    const pageSize = this.pool.pageSize;
    const piecePages = Math.max(1, Math.floor(this.uploadPieceBytes / (pageSize * 4)));
    if (this.uploadPiece.length < piecePages * pageSize)
      this.uploadPiece = new Float32Array(piecePages * pageSize);
    const staging = this.uploadPiece;
    let slot = 0;
    let runPage = -1;
    let previous = -2;
    const flush = () => {
      if (slot > 0)
        writeSplit(this.ctx, this.storage, runPage * pageSize, staging.subarray(0, slot * pageSize));
      slot = 0;
    };
    fillAdapterPages(pageSize, layout, adapter, (page) => {
      if (page !== previous + 1 || slot === piecePages) {
        flush();
        runPage = page;
      }
      previous = page;
      return { into: staging, at: pageSize * slot++ };
    });
    flush();
    this.adapterSlots.place(layout);
  }

  /** The adapter's pages are about to be freed: its slot goes (a step naming it afterwards fails clearly). */
  releaseAdapter(layout: AdapterLayout): void {
    if (!this.closed) this.adapterSlots.release(layout);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ctx.device.queue.onSubmittedWorkDone();
    this.scratch.destroy();
    this.rope.destroy();
    this.attention.destroy();
    this.sampler.destroy();
    this.adapterSlots.destroy();
    destroyModel(this.ctx, this.model);
    destroySplit(this.ctx, this.storage);
    if (this.ownsContext) this.ctx.destroy();
  }

  private attentionBlock(
    pass: GPUComputePassEncoder,
    state: StepState,
    layer: number,
    normed: GPUBuffer,
    out: GPUBuffer,
  ): void {
    const { config } = this;
    const T = state.batch.numTokens;
    const qDim = config.numHeads * config.headDim;
    const kvDim = this.kvLayout.kvDim;
    const q = this.scratchBuffer('q', T * qDim * 4);
    const k = this.scratchBuffer('k', T * kvDim * 4);
    const v = this.scratchBuffer('v', T * kvDim * 4);
    const attended = this.scratchBuffer('attended', T * qDim * 4);
    this.projection(pass, state, layer, 'q_proj', normed, q);
    this.projection(pass, state, layer, 'k_proj', normed, k);
    this.projection(pass, state, layer, 'v_proj', normed, v);
    this.rope.encode(pass, q, T, config.numHeads, state.positions);
    this.rope.encode(pass, k, T, config.numKvHeads, state.positions);
    const pairs = attentionChunkPairs(this.storage, this.kvLayout, state.batch, layer);
    this.kvWrite.encode(pass, state.attention, layer, k, v, chunksOfPairs(pairs));
    this.attention.encode(pass, state.attention, layer, q, attended, pairs);
    this.projection(pass, state, layer, 'o_proj', attended, out);
  }

  private mlpBlock(
    pass: GPUComputePassEncoder,
    state: StepState,
    layer: number,
    normed: GPUBuffer,
    out: GPUBuffer,
  ): void {
    const T = state.batch.numTokens;
    const I = this.config.intermediateSize;
    const gate = this.scratchBuffer('gate', T * I * 4);
    const up = this.scratchBuffer('up', T * I * 4);
    const act = this.scratchBuffer('act', T * I * 4);
    this.projection(pass, state, layer, 'gate_proj', normed, gate);
    this.projection(pass, state, layer, 'up_proj', normed, up);
    this.siluMul.encode(pass, gate, up, act, T * I);
    this.projection(pass, state, layer, 'down_proj', act, out);
  }

  /** Base linear layer, then each token's own adapter's LoRA delta gathered from the pool. */
  private projection(
    pass: GPUComputePassEncoder,
    state: StepState,
    layer: number,
    module: TargetModule,
    x: GPUBuffer,
    y: GPUBuffer,
  ): void {
    const T = state.batch.numTokens;
    this.gemm.encode(pass, x, T, this.model.layers[layer].linear[module], y);
    const { lora } = state;
    const entry = slotEntry(layer, module);
    if (!lora?.packed.touched[entry]) return;
    const call = { entry, ...moduleShape(this.config, module) };
    const v = this.scratchBuffer('lora-v', Math.max(1, lora.packed.vLength) * 4);
    this.shrink.encode(pass, lora, this.adapterSlots, call, x, v);
    this.expand.encode(pass, lora, this.adapterSlots, call, v, y);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('webgpu engine is closed');
  }
}

/** Prompt rows are scored, not sampled: the cheapest setting (argmax) fills their slot in sample.wgsl. */
/** Largest write of an adapter upload: Dawn's staging ring holds writes up to 4 MiB. */
const UPLOAD_PIECE_BYTES = 4 * 2 ** 20;

const PROMPT_ROW_SAMPLING: RowSampling = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

/** A step's forward pass, recorded into an open pass, with where its logits will be. */
interface ForwardPass {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder;
  numRows: number;
  logits: GPUBuffer;
}
