/**
 * LoRA gather kernels (MBGMV for decode, MBGMM for prefill) against the same math as a padded
 * batched matmul (every adapter padded to the batch's largest rank), on one device in one run.
 * Quick by default; `--full` runs more repetitions and bigger batches. Progress goes to stderr,
 * results to bench/results/webgpu-kernels.{json,md,svg}.
 *
 *   npx tsx bench/webgpu-kernels.ts [--full] [--hidden 2048]
 */
import { buildAttentionBatch } from '../kernels/attention-batch.js';
import { AdapterSlotTable, slotEntry } from '../kernels/webgpu/adapter-slots.js';
import { uploadAttentionBatch } from '../kernels/webgpu/attention-meta.js';
import {
  createSplitBuffer,
  createStorageBuffer,
  DTYPE_BYTES,
  destroySplit,
  readF32,
  uploadBuffer,
  writeSplit,
} from '../kernels/webgpu/buffers.js';
import { createWebGpuContext, type WebGpuContext } from '../kernels/webgpu/device.js';
import { destroyWeight, GemmKernel, uploadWeight } from '../kernels/webgpu/gemm.js';
import { LoraExpandKernel } from '../kernels/webgpu/lora-expand.js';
import { type LoraForm, packStepLora } from '../kernels/webgpu/lora-meta.js';
import { type DenseLora, PaddedLoraKernel, uploadPaddedLora } from '../kernels/webgpu/lora-padded.js';
import { LoraShrinkKernel } from '../kernels/webgpu/lora-shrink.js';
import { PagedAttentionKernel } from '../kernels/webgpu/paged-attention.js';
import { SampleKernel } from '../kernels/webgpu/sample.js';
import { BLOCK_SIZE, QUANTIZED_BITS } from '../kernels/weight-quantization.js';
import type { AdapterLayout } from '../memory/adapter-layout.js';
import { writeBenchReport } from './report.js';

const args = process.argv.slice(2);
const full = args.includes('--full');
const hiddenArg = args.indexOf('--hidden');
const HIDDEN = hiddenArg >= 0 ? Number(args[hiddenArg + 1]) : 2048;
const REPS = full ? 20 : 10;
/** Kernels are timed in interleaved rounds and the best round kept: other processes share this CPU. */
const ROUNDS = full ? 11 : 7;
const NUM_ADAPTERS = 8;
const DECODE_TOKENS = full ? 64 : 32;
const PREFILL_REQUESTS = 8;
const PREFILL_TOKENS_EACH = full ? 64 : 16;

const RANK_MIXES: Record<string, number[]> = {
  'uniform r16': Array(NUM_ADAPTERS).fill(16),
  'mixed r8–128': [8, 16, 32, 64, 128, 8, 16, 32],
};

function progress(message: string): void {
  process.stderr.write(`[webgpu-kernels] ${message}\n`);
}

/** Deterministic values in [-1, 1) so runs compare. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

interface Scenario {
  mix: string;
  form: LoraForm;
  ranks: number[];
  tokenAdapter: number[];
}

/** Seconds per repetition of `record`: device timestamps where the adapter has them, else wall time. */
async function timeKernel(
  ctx: WebGpuContext,
  record: (pass: GPUComputePassEncoder) => void,
  reps = REPS,
): Promise<number> {
  const once = ctx.device.createCommandEncoder();
  const warm = once.beginComputePass();
  record(warm);
  warm.end();
  ctx.device.queue.submit([once.finish()]);
  await ctx.finish();
  const querySet = ctx.hasTimestamps ? ctx.device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const encoder = ctx.device.createCommandEncoder();
  const pass = encoder.beginComputePass(
    querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
  );
  for (let r = 0; r < reps; r++) record(pass);
  pass.end();
  let resolved: GPUBuffer | null = null;
  if (querySet) {
    resolved = ctx.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
  }
  const start = performance.now();
  ctx.device.queue.submit([encoder.finish()]);
  await ctx.finish();
  const wall = (performance.now() - start) / 1000 / reps;
  if (!resolved || !querySet) return wall;
  const staging = ctx.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const copy = ctx.device.createCommandEncoder();
  copy.copyBufferToBuffer(resolved, 0, staging, 0, 16);
  ctx.device.queue.submit([copy.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const [begin, end] = new BigUint64Array(staging.getMappedRange());
  staging.unmap();
  for (const b of [staging, resolved]) b.destroy();
  querySet.destroy();
  const device = Number(end - begin) / 1e9 / reps;
  // Some drivers report zeros or garbage: fall back to wall time when the stamps make no sense.
  return device > 0 && device < wall * 10 ? device : wall;
}

function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const [mix, ranks] of Object.entries(RANK_MIXES)) {
    const decode = Array.from({ length: DECODE_TOKENS }, (_, t) => t % NUM_ADAPTERS);
    const prefill: number[] = [];
    for (let r = 0; r < PREFILL_REQUESTS; r++)
      for (let i = 0; i < PREFILL_TOKENS_EACH; i++) prefill.push(r % NUM_ADAPTERS);
    out.push({ mix, form: 'mbgmv', ranks, tokenAdapter: decode });
    out.push({ mix, form: 'mbgmm', ranks, tokenAdapter: prefill });
  }
  return out;
}

/** Best of a few rounds of `reps` calls each, in seconds per call. */
async function bestOf(ctx: WebGpuContext, record: (pass: GPUComputePassEncoder) => void, reps: number) {
  const times: number[] = [];
  for (let round = 0; round < 3; round++) times.push(await timeKernel(ctx, record, reps));
  times.sort((a, b) => a - b);
  return { best: times[0], median: times[1] };
}

/**
 * The engine's other hot kernels at TinyLlama's shapes, for context: a decode-sized gemm in f32
 * and f16, decode attention over paged KV, and device sampling over a 32000-token vocabulary.
 */
async function otherKernels(ctx: WebGpuContext): Promise<Array<Record<string, string | number>>> {
  const out: Array<Record<string, string | number>> = [];
  type Timing = { best: number; median: number };
  const row = (form: string, tokens: number, kernel: string, t: Timing, flops: number, bytes: number) => {
    out.push({
      ranks: '—',
      form,
      tokens,
      kernel,
      'best µs': t.best * 1e6,
      'median µs': t.median * 1e6,
      'useful GFLOP/s': flops / t.best / 1e9,
      'GB/s': bytes / t.best / 1e9,
    });
  };
  // Both gemm kernels at decode (1, 8, 32 rows) and prefill-ish (128 rows) sizes: the engine picks
  // gemm_skinny.wgsl up to SKINNY_MAX_ROWS rows on hardware adapters (GemmKernel.variantFor).
  const gemmRows = full ? [1, 8, 32, 128] : [8, 32];
  const maxRows = Math.max(...gemmRows);
  const x = uploadBuffer(ctx, values(maxRows * HIDDEN, 3), 'gemm-x');
  const y = createStorageBuffer(ctx, maxRows * HIDDEN * 4, 'gemm-y');
  const gemm = new GemmKernel(ctx);
  const square = values(HIDDEN * HIDDEN, 5);
  for (const [layout, variant] of [
    ['out-in', 'tiled'],
    ['out-in', 'skinny'],
    ['in-out', 'tiled'],
  ] as const) {
    for (const dtype of ['f32', 'f16', 'bf16', 'int8', 'int4'] as const) {
      if (dtype === 'f16' && !ctx.hasF16) continue;
      // int8/int4 keep the out-in layout (their codes are blocks along a stored row).
      if ((dtype === 'int8' || dtype === 'int4') && layout === 'in-out') continue;
      const w = uploadWeight(ctx, square, HIDDEN, HIDDEN, dtype, 'w', undefined, layout);
      for (const T of gemmRows) {
        progress(`gemm ${variant} ${dtype} ${layout} ${T}×${HIDDEN}×${HIDDEN}`);
        const t = await bestOf(ctx, (p) => gemm.encode(p, x, T, w, y, { variant }), 2);
        // Codes read one f32 scale per block beside them.
        const bytes =
          dtype === 'int8' || dtype === 'int4'
            ? HIDDEN * HIDDEN * (QUANTIZED_BITS[dtype] / 8 + 4 / BLOCK_SIZE[dtype])
            : HIDDEN * HIDDEN * DTYPE_BYTES[dtype];
        row(
          `${T}×${HIDDEN}×${HIDDEN}, W ${layout}`,
          T,
          `gemm ${variant} ${dtype}`,
          t,
          2 * T * HIDDEN * HIDDEN,
          bytes,
        );
      }
      destroyWeight(ctx, w);
    }
  }

  const T = 8;
  // Decode attention: 8 sequences of 256 positions, 32 query heads over 4 KV heads of 64.
  const heads = 32;
  const kvHeads = 4;
  const headDim = 64;
  const context = 256;
  const layout = {
    numLayers: 1,
    kvDim: kvHeads * headDim,
    pageSize: HIDDEN,
    tokensPerPage: HIDDEN / (kvHeads * headDim),
    pagesPerBlock: 2,
  };
  const blocks = Math.ceil(context / layout.tokensPerPage);
  const numPages = 1 + T * blocks * 2;
  const pool = createSplitBuffer(ctx, numPages * HIDDEN, HIDDEN, 'f32', 'attention-pool');
  writeSplit(ctx, pool, 0, values(numPages * HIDDEN, 9));
  const sequences = Array.from({ length: T }, (_, s) => ({
    seqId: s,
    tokens: [0],
    startPos: context - 1,
    pageTable: Int32Array.from(
      { length: blocks * 2 },
      (_, i) => 1 + s * blocks * 2 + ((i * 7) % (blocks * 2)),
    ),
    adapter: null,
    logits: 'last' as const,
  }));
  const attentionBatch = uploadAttentionBatch(ctx, buildAttentionBatch({ sequences }));
  const q = uploadBuffer(ctx, values(T * heads * headDim, 11), 'q');
  const attended = createStorageBuffer(ctx, T * heads * headDim * 4, 'attended');
  const attention = new PagedAttentionKernel(ctx, pool, layout, heads, kvHeads, headDim);
  progress('paged attention decode');
  const ta = await bestOf(ctx, (p) => attention.encode(p, attentionBatch, 0, q, attended), 2);
  row(
    `decode, ${context} positions, ${heads}/${kvHeads} heads × ${headDim}`,
    T,
    'paged_attention',
    ta,
    4 * T * heads * context * headDim,
    2 * T * context * layout.kvDim * 4,
  );
  attention.destroy();
  destroySplit(ctx, pool);

  const vocab = 32000;
  const sampler = new SampleKernel(ctx);
  const logits = uploadBuffer(ctx, values(T * vocab, 13), 'logits');
  const settings = sampler.uploadSettings(
    Array.from({ length: T }, (_, i) => ({ temperature: 0.8, topK: 0, topP: 0.9, uniform: (i + 0.5) / T })),
  );
  const ids = createStorageBuffer(ctx, T * 4, 'ids');
  progress('sample');
  const ts = await bestOf(ctx, (p) => sampler.encode(p, logits, T, vocab, settings, ids), 1);
  row(`${vocab} vocab, temperature + top-p`, T, 'sample', ts, 0, T * vocab * 4);
  sampler.destroy();
  for (const b of [x, y, attentionBatch.buffer, q, attended, logits, settings, ids]) b.destroy();
  return out;
}

async function main(): Promise<void> {
  const ctx = await createWebGpuContext();
  progress(
    `device: ${ctx.adapter.description || ctx.adapter.device} (fallback ${ctx.adapter.isFallbackAdapter})`,
  );
  const inF = HIDDEN;
  const outF = HIDDEN;
  const rows: Array<Record<string, string | number>> = [];
  const bars: Array<{ label: string; value: number }> = [];
  const notes: string[] = [];
  const padded = new PaddedLoraKernel(ctx);

  for (const sc of scenarios()) {
    progress(`${sc.mix}, ${sc.form}: ${sc.tokenAdapter.length} tokens`);
    // Adapters' rows on shuffled pages of one pool, exactly as memory/adapter-layout.ts places them.
    const totalRows = sc.ranks.reduce((s, r) => s + r, 0);
    const numPages = 1 + 2 * totalRows;
    const order = Array.from({ length: numPages - 1 }, (_, i) => i + 1).sort(
      (a, b) => ((a * 2654435761) >>> 0) - ((b * 2654435761) >>> 0),
    );
    const storage = new Float32Array(numPages * HIDDEN);
    const dense: DenseLora[] = [];
    const layouts: AdapterLayout[] = sc.ranks.map((rank, i) => {
      const aPages = Int32Array.from(order.splice(0, rank));
      const bPages = Int32Array.from(order.splice(0, rank));
      const a = values(rank * inF, 1 + i);
      const bt = values(rank * outF, 101 + i);
      for (let r = 0; r < rank; r++) {
        storage.set(a.subarray(r * inF, (r + 1) * inF), aPages[r] * HIDDEN);
        storage.set(bt.subarray(r * outF, (r + 1) * outF), bPages[r] * HIDDEN);
      }
      dense.push({ rank, scale: 2 / rank, a, bt });
      return {
        name: `a${i}`,
        rank,
        modules: [
          {
            q_proj: {
              rank,
              scale: 2 / rank,
              inFeatures: inF,
              outFeatures: outF,
              pagesPerRowA: 1,
              pagesPerRowB: 1,
              aPages,
              bPages,
            },
          },
        ],
        allPages: new Int32Array([...aPages, ...bPages]),
      };
    });
    const pool = createSplitBuffer(ctx, numPages * HIDDEN, HIDDEN, 'f32', 'pool');
    writeSplit(ctx, pool, 0, storage);
    const slots = new AdapterSlotTable(ctx, pool, 1);
    const slotOf = layouts.map((layout) => slots.place(layout));
    const step = packStepLora(
      sc.tokenAdapter.map((i) => slotOf[i]),
      (slot) => slots.info(slot),
      slots.entriesPerSlot,
      sc.form,
    );
    const lora = { packed: step, buffer: uploadBuffer(ctx, step.words, 'lora-step') };
    const call = { entry: slotEntry(0, 'q_proj'), inFeatures: inF, outFeatures: outF };
    const T = step.numTokens;
    const x = uploadBuffer(ctx, values(T * inF, 7), 'x');
    const gatherY = createStorageBuffer(ctx, T * outF * 4, 'y-gather');
    const paddedY = createStorageBuffer(ctx, T * outF * 4, 'y-padded');
    const v = createStorageBuffer(ctx, step.vLength * 4, 'v');
    const pad = uploadPaddedLora(ctx, dense, sc.tokenAdapter, inF, outF);
    const gShrink = new LoraShrinkKernel(ctx, pool);
    // The other decode entry, for comparison: the engine picks split-k on hardware adapters only.
    const otherShrink = new LoraShrinkKernel(ctx, pool, { splitDecode: ctx.adapter.isFallbackAdapter });
    const gExpand = new LoraExpandKernel(ctx, pool);

    // One untimed run of each to check both compute the same y.
    const check = ctx.device.createCommandEncoder();
    const cp = check.beginComputePass();
    gShrink.encode(cp, lora, slots, call, x, v);
    gExpand.encode(cp, lora, slots, call, v, gatherY);
    padded.encodeShrink(cp, pad, x);
    padded.encodeExpand(cp, pad, paddedY);
    cp.end();
    ctx.device.queue.submit([check.finish()]);
    const yg = await readF32(ctx, gatherY, T * outF);
    const yp = await readF32(ctx, paddedY, T * outF);
    let diff = 0;
    let scale = 1;
    for (let i = 0; i < yg.length; i++) {
      diff = Math.max(diff, Math.abs(yg[i] - yp[i]));
      scale = Math.max(scale, Math.abs(yp[i]));
    }
    notes.push(
      `${sc.mix} ${sc.form}: gather vs padded max |Δy| / max(1, |y|) = ${(diff / scale).toExponential(2)} (max |y| ${scale.toPrecision(3)})`,
    );

    const usefulRows = step.vLength;
    const uniqueRows = totalRows;
    const kernels: Record<string, (pass: GPUComputePassEncoder) => void> = {
      'gather shrink': (p) => gShrink.encode(p, lora, slots, call, x, v),
      ...(sc.form === 'mbgmv'
        ? {
            [`gather shrink (${ctx.adapter.isFallbackAdapter ? 'split-k' : 'one invocation per row'})`]: (
              p: GPUComputePassEncoder,
            ) => otherShrink.encode(p, lora, slots, call, x, v),
          }
        : {}),
      'gather expand': (p) => gExpand.encode(p, lora, slots, call, v, gatherY),
      'padded shrink': (p) => padded.encodeShrink(p, pad, x),
      'padded expand': (p) => padded.encodeExpand(p, pad, paddedY),
    };
    const samples: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kernel, record] of Object.entries(kernels)) {
        samples[kernel] ??= [];
        samples[kernel].push(await timeKernel(ctx, record));
      }
    }
    const measured: Record<string, number> = {};
    const medians: Record<string, number> = {};
    for (const [kernel, times] of Object.entries(samples)) {
      const sorted = [...times].sort((a, b) => a - b);
      measured[kernel] = sorted[0];
      medians[kernel] = sorted[Math.floor(sorted.length / 2)];
    }
    for (const [kernel, seconds] of Object.entries(measured)) {
      const isShrink = kernel.includes('shrink');
      const isPadded = kernel.startsWith('padded');
      const features = isShrink ? inF : outF;
      const flops = 2 * usefulRows * features;
      // Bytes a kernel must at least move: its weight rows once, activations in and out.
      const weightRows = isPadded ? NUM_ADAPTERS * pad.maxRank : uniqueRows;
      const vBytes = (isPadded ? T * pad.maxRank : usefulRows) * 4;
      const bytes = weightRows * features * 4 + T * features * 4 * (isShrink ? 1 : 2) + vBytes;
      rows.push({
        ranks: sc.mix,
        form: sc.form === 'mbgmv' ? 'decode (MBGMV)' : 'prefill (MBGMM)',
        tokens: T,
        kernel,
        'best µs': seconds * 1e6,
        'median µs': medians[kernel] * 1e6,
        'useful GFLOP/s': flops / seconds / 1e9,
        'GB/s': bytes / seconds / 1e9,
      });
      bars.push({ label: `${sc.mix} ${sc.form} ${kernel}`, value: seconds * 1e6 });
    }
    const gather = measured['gather shrink'] + measured['gather expand'];
    const pads = measured['padded shrink'] + measured['padded expand'];
    notes.push(
      `${sc.mix} ${sc.form}: gather shrink+expand ${(gather * 1e6).toFixed(0)} µs vs padded ${(pads * 1e6).toFixed(0)} µs → gather/padded = ${(gather / pads).toFixed(2)}`,
    );
    for (const b of [x, gatherY, paddedY, lora.buffer, v, pad.a, pad.bt, pad.adapterOf, pad.scales, pad.v]) {
      ctx.pipelines.forgetBuffer(b);
      b.destroy();
    }
    slots.destroy();
    for (const b of pool.chunks) {
      ctx.pipelines.forgetBuffer(b);
      b.destroy();
    }
  }
  notes.push('Target: gather kernels win on mixed ranks and lose ≤ 10 % on uniform rank 16.');
  notes.push(
    'The padded baseline does one token per item in both forms (no 4-token tiles), so at prefill part of the gather kernels’ lead is MBGMM’s tiling, not only the missing padding.',
  );
  rows.push(...(await otherKernels(ctx)));
  notes.push(
    'useful GFLOP/s counts only real rank-rows (Σ rank per token) for both kernels; GB/s counts each kernel’s own minimal traffic (its weight rows once, activations in/out).',
  );
  const files = writeBenchReport({
    name: 'webgpu-kernels',
    title: 'WebGPU LoRA kernels: gather (MBGMV/MBGMM) vs padded batched matmul',
    context: {
      device: ctx.adapter.description || ctx.adapter.device,
      fallbackAdapter: String(ctx.adapter.isFallbackAdapter),
      timer: ctx.hasTimestamps ? 'timestamp queries (wall time if they misbehave)' : 'wall time',
      hidden: HIDDEN,
      adapters: NUM_ADAPTERS,
      repetitions: REPS,
      rounds: `${ROUNDS} (best kept)`,
      mode: full ? 'full' : 'quick',
      date: new Date().toISOString(),
    },
    rows,
    chart: { unit: 'µs per call', bars },
    notes,
  });
  progress(`wrote ${files.join(', ')}`);
  ctx.destroy();
}

await main();
