/**
 * How fast onnxruntime's CPU kernels read a decode step's LoRA rows, by the rows' storage format
 * and the MatMul form, beside the machine's read bandwidth measured in the same run. A decode step
 * of the onnx engine multiplies each token by its own adapter's rows (the stacked slots' blocked
 * form, kernels/onnx/README.md): per module and layer, `[G, 1, in]·[G, in, R]` then
 * `[G, 1, R]·[G, R, out]`, G blocks of R = 8 rows. At many distinct adapters those rows are bytes
 * the base step does not read, so how fast they are read decides what distinct adapters cost
 * (issue 6's mixed ranks, issue 10's LoRA overhead at batch 8).
 *
 * Each case runs one session over TinyLlama's 22 layers × 7 modules of such products and nothing
 * else; the cases take turns, run by run, with a read-bandwidth probe before each round:
 * - f32, the engine's form: x·Aᵀ (A rows as stored, transposed by the MatMul), then ·Bᵀ;
 * - f32, the stack on the left: (A·xᵀ)ᵀ, then ·Bᵀ;
 * - f32, A stored transposed, [G, in, R]: x·A with no transpose;
 * - f32, the engine's form under the parallel executor (2 inter-op threads of 1 intra-op thread);
 * - f16 rows, each block cast to f32 beside its MatMul (half the bytes);
 * - int8 rows, each block dequantized beside its MatMul (a quarter of the bytes, one scale).
 *
 *   npx tsx bench/onnx-lora-row-formats.ts [--ranks 16] [--adapters 8] [--rounds 5] [--runs 5] [--threads 2] [--label b8-r16]
 *
 * --ranks is cycled over the adapters (8,16,32,64: S-LoRA's mixed ranks); every rank must be a
 * multiple of 8. One decode token per adapter, as at n = 2,000, where every sequence has its own.
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../kernels/onnx/onnx-model.js';
import '../kernels/onnx/no-telemetry.js';
import { f32ToF16 } from '../model/float-convert.js';
import { moduleShape, TARGET_MODULES } from '../model/llama-modules.js';
import { syntheticConfig, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { fillUniform } from '../model/synthetic-weights.js';
import { ReadBandwidthProbe } from './memory-bandwidth.js';
import { machineContext, writeBenchReport } from './report.js';
import { spread } from './serve/statistics.js';

const { values: args } = parseArgs({
  options: {
    ranks: { type: 'string', default: '16' },
    adapters: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    label: { type: 'string', default: 'b8-r16' },
  },
});
const BLOCK_ROWS = 8;
const ranks = args.ranks.split(',').map(Number);
for (const r of ranks)
  if (!Number.isInteger(r) || r <= 0 || r % BLOCK_ROWS !== 0)
    throw new Error(`--ranks: ${r} is not a positive multiple of ${BLOCK_ROWS}`);
const adapters = Number(args.adapters);
const rounds = Number(args.rounds);
const runs = Number(args.runs);
const threads = Number(args.threads);
for (const [flag, v] of [
  ['--adapters', adapters],
  ['--rounds', rounds],
  ['--runs', runs],
  ['--threads', threads],
] as const)
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${flag}: a positive whole number, not ${v}`);

const config = syntheticConfig(TINYLLAMA_SPEC);
const adapterRanks = Array.from({ length: adapters }, (_, i) => ranks[i % ranks.length]);
/** Blocks of BLOCK_ROWS rows: each adapter's rank cut into them, one decode token each. */
const G = adapterRanks.reduce((sum, r) => sum + r / BLOCK_ROWS, 0);
const PRODUCTS = TARGET_MODULES.map((m) => moduleShape(config, m));

type RowFormat = 'float32' | 'float16' | 'int8';
interface FormCase {
  label: string;
  rows: RowFormat;
  /** A as `[G, R, in]` (stored as the stack holds it) or `[G, in, R]` (stored transposed). */
  shrink: 'x·Aᵀ' | '(A·xᵀ)ᵀ' | 'x·A';
  parallel: boolean;
}
const CASES: FormCase[] = [
  { label: "f32, the engine's form: x·Aᵀ, ·Bᵀ", rows: 'float32', shrink: 'x·Aᵀ', parallel: false },
  { label: 'f32, stack on the left: (A·xᵀ)ᵀ, ·Bᵀ', rows: 'float32', shrink: '(A·xᵀ)ᵀ', parallel: false },
  { label: 'f32, A stored transposed: x·A, ·Bᵀ', rows: 'float32', shrink: 'x·A', parallel: false },
  { label: "f32, the engine's form, parallel executor", rows: 'float32', shrink: 'x·Aᵀ', parallel: true },
  { label: 'f16 rows, Cast beside each MatMul', rows: 'float16', shrink: 'x·Aᵀ', parallel: false },
  { label: 'int8 rows, DequantizeLinear beside each MatMul', rows: 'int8', shrink: 'x·Aᵀ', parallel: false },
];
const BYTES: Record<RowFormat, number> = { float32: 4, float16: 2, int8: 1 };
/** int8 rows: codes of value × INT8_CODES_PER_UNIT, dequantized with one scale, its inverse. */
const INT8_CODES_PER_UNIT = 2540;
/** Elements of every product's A and Bᵀ rows over the layers: one buffer per format, shared by the cases. */
const ROW_ELEMENTS =
  config.numLayers * PRODUCTS.reduce((s, p) => s + G * BLOCK_ROWS * (p.inFeatures + p.outFeatures), 0);

function progress(message: string): void {
  process.stderr.write(`[onnx-lora-row-formats] ${message}\n`);
}

/** Rows in each format, filled once (small values; the f16 and int8 ones repeat a filled stretch). */
function rowBuffers(): Record<RowFormat, Float32Array | Uint16Array | Int8Array> {
  const f32 = fillUniform(new Float32Array(ROW_ELEMENTS), 11, 0.05);
  const stretch = Math.min(ROW_ELEMENTS, 1 << 20);
  const f16 = new Uint16Array(ROW_ELEMENTS);
  for (let i = 0; i < stretch; i++) f16[i] = f32ToF16(f32[i]);
  const int8 = new Int8Array(ROW_ELEMENTS);
  for (let i = 0; i < stretch; i++) int8[i] = Math.round(f32[i] * INT8_CODES_PER_UNIT);
  for (let filled = stretch; filled < ROW_ELEMENTS; filled *= 2) {
    f16.copyWithin(filled, 0, Math.min(filled, ROW_ELEMENTS - filled));
    int8.copyWithin(filled, 0, Math.min(filled, ROW_ELEMENTS - filled));
  }
  return { float32: f32, float16: f16, int8 };
}

/** One session of the case's 154 products; its rows are zero-copy views of the format's buffer. */
async function caseSession(c: FormCase, buffers: ReturnType<typeof rowBuffers>) {
  const g = new GraphBuilder(`lora_rows_${c.rows}`);
  const x = g.input('x', 'float32', [G, 1, config.hiddenSize]);
  const xDown = g.input('x_down', 'float32', [G, 1, config.intermediateSize]);
  const feeds: Record<string, ort.Tensor> = {
    x: new ort.Tensor('float32', fillUniform(new Float32Array(G * config.hiddenSize), 3, 1), [
      G,
      1,
      config.hiddenSize,
    ]),
    x_down: new ort.Tensor('float32', fillUniform(new Float32Array(G * config.intermediateSize), 4, 1), [
      G,
      1,
      config.intermediateSize,
    ]),
  };
  const scale = c.rows === 'int8' ? g.scalar(1 / INT8_CODES_PER_UNIT) : undefined;
  const toF32 = (rows: string) =>
    c.rows === 'float16'
      ? g.op('Cast', [rows], { to: 1 })
      : scale
        ? g.op('DequantizeLinear', [rows, scale])
        : rows;
  const data = buffers[c.rows];
  let offset = 0;
  const rowsInput = (name: string, dims: number[]) => {
    const size = dims.reduce((a, b) => a * b, 1);
    feeds[name] = new ort.Tensor(c.rows, data.subarray(offset, offset + size) as never, dims);
    offset += size;
    return toF32(g.input(name, c.rows, dims));
  };
  const sums: string[] = [];
  for (let l = 0; l < config.numLayers; l++)
    for (const [m, { inFeatures, outFeatures }] of PRODUCTS.entries()) {
      const input = inFeatures === config.hiddenSize ? x : xDown;
      const name = `${TARGET_MODULES[m]}_${l}`;
      let shrunk: string;
      if (c.shrink === 'x·A')
        shrunk = g.op('MatMul', [input, rowsInput(`a_${name}`, [G, inFeatures, BLOCK_ROWS])]);
      else {
        const a = rowsInput(`a_${name}`, [G, BLOCK_ROWS, inFeatures]);
        shrunk =
          c.shrink === 'x·Aᵀ'
            ? g.op('MatMul', [input, g.op('Transpose', [a], { perm: [0, 2, 1] })])
            : g.op('Transpose', [g.op('MatMul', [a, g.op('Transpose', [input], { perm: [0, 2, 1] })])], {
                perm: [0, 2, 1],
              });
      }
      const expanded = g.op('MatMul', [shrunk, rowsInput(`bt_${name}`, [G, BLOCK_ROWS, outFeatures])]);
      sums.push(g.op('ReduceSum', [expanded], { keepdims: 0 }));
    }
  g.output(g.op('Sum', sums), 'float32', []);
  const session = await ort.InferenceSession.create(g.toBytes(), {
    intraOpNumThreads: c.parallel ? 1 : threads,
    interOpNumThreads: c.parallel ? threads : 1,
    executionMode: c.parallel ? 'parallel' : 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  return { session, feeds, bytes: ROW_ELEMENTS * BYTES[c.rows] };
}

async function main(): Promise<void> {
  const gb = (ROW_ELEMENTS * 4) / 1e9;
  progress(
    `${adapters} adapters of ranks ${[...new Set(adapterRanks)].join('/')} (${G} blocks of ${BLOCK_ROWS} rows), ` +
      `${config.numLayers} layers × ${TARGET_MODULES.length} modules: ${gb.toFixed(2)} GB of f32 rows a step`,
  );
  const buffers = rowBuffers();
  const sessions: Awaited<ReturnType<typeof caseSession>>[] = [];
  for (const c of CASES) {
    progress(`session: ${c.label}`);
    sessions.push(await caseSession(c, buffers));
  }
  const probe = await ReadBandwidthProbe.create(threads);
  const bandwidth: number[] = [];
  const perRound = CASES.map((): number[] => []);
  for (const s of sessions) await s.session.run(s.feeds); // warm-up: first-run allocations
  for (let r = 0; r < rounds; r++) {
    bandwidth.push(await probe.best(3));
    const times = CASES.map((): number[] => []);
    for (let k = 0; k < runs; k++)
      for (const [i, s] of sessions.entries()) {
        const started = performance.now();
        await s.session.run(s.feeds);
        times[i].push(performance.now() - started);
      }
    for (const [i, t] of times.entries()) perRound[i].push(spread(t).median);
    progress(
      `round ${r + 1}/${rounds}: ${bandwidth[r].toFixed(1)} GB/s probe; ` +
        perRound
          .map(
            (t, i) =>
              `${CASES[i].rows}/${CASES[i].shrink}${CASES[i].parallel ? '/par' : ''} ${t[r].toFixed(1)}`,
          )
          .join(', '),
    );
  }
  await probe.close();
  for (const s of sessions) await s.session.release();

  const bw = spread(bandwidth);
  const engineMs = spread(perRound[0]).median;
  const rows = CASES.map((c, i) => {
    const ms = spread(perRound[i]);
    const bytes = sessions[i].bytes;
    return {
      form: c.label,
      'rows read a step, GB': (bytes / 1e9).toFixed(3),
      'ms a step, min / median / max': ms.text,
      'GB/s of its rows (median)': (bytes / 1e9 / (ms.median / 1000)).toFixed(1),
      'share of the probe (median)': `${((100 * bytes) / 1e9 / (ms.median / 1000) / bw.median).toFixed(0)} %`,
      "vs the engine's form": `${((100 * ms.median) / engineMs).toFixed(0)} %`,
      median: ms.median,
    };
  });
  const best = rows.reduce((a, b) => (b.median < a.median ? b : a));
  const boundMs = (gb / bw.median) * 1000;
  const files = writeBenchReport({
    name: `onnx-lora-row-formats-${args.label}`,
    title: `onnx engine: how fast a decode step's LoRA rows are read, by format and form (${args.label})`,
    context: {
      ...machineContext(),
      model: `TinyLlama's shape: ${config.numLayers} layers × ${TARGET_MODULES.length} modules (hidden ${config.hiddenSize}, intermediate ${config.intermediateSize}, k/v ${config.numKvHeads * config.headDim})`,
      adapters: `${adapters}, ranks ${adapterRanks.join(', ')}`,
      blocks: `${G} of ${BLOCK_ROWS} rows per module and layer, one decode token each`,
      'f32 rows a step': `${gb.toFixed(3)} GB`,
      threads,
      'rounds × runs': `${rounds} × ${runs}`,
      'memory read bandwidth, GB/s min / median / max': bw.text,
      onnxruntime: ort.env.versions.common,
    },
    rows: rows.map(({ median: _, ...r }) => r),
    chart: {
      unit: 'ms a step (median of the rounds)',
      bars: rows.map((r) => ({ label: r.form, value: r.median })),
    },
    notes: [
      "Each round: the read-bandwidth probe (bench/memory-bandwidth.ts, best of 3), then every case in turn, run by run; a round keeps each case's median run, and the table gives min / median / max over the rounds.",
      `The f32 rows at the probe's median bandwidth would take ${boundMs.toFixed(1)} ms; the fastest form here ("${best.form}") takes ${best.median.toFixed(1)} ms, so it reads at ${((100 * boundMs) / best.median).toFixed(0)} % of that bandwidth.`,
      "The 16-bit and 8-bit rows read fewer bytes but widen them in an op of their own before the MatMul; a form pays off only if its time falls below the f32 form's.",
      'Each product sums its output (ReduceSum) so that one scalar leaves the session; that costs every case alike.',
    ],
  });
  progress(`wrote ${files.join(', ')}`);
}

await main();
