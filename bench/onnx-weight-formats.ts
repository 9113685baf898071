/**
 * Which onnxruntime op graph to store low-precision base weights with: the linear layers of a few
 * TinyLlama-width decoder layers (hidden 2048, MLP 5632, GQA 32/4; 176 MB of f32 weights a layer,
 * far past any cache), chained as in the model, with each candidate format side by side at decode
 * (M = 1, 8) and prefill (M = 256) widths. Rounds interleave the candidates (the machine is shared)
 * and min/median/max are kept. Also records the RSS each session added (what ORT keeps of the
 * weights) and the error of its output against f32.
 *
 *   npx tsx bench/onnx-weight-formats.ts [--layers N] [--threads N] [--rounds N]
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { float16Tensor } from '../kernels/onnx/float16-tensor.js';
import { GraphBuilder } from '../kernels/onnx/onnx-model.js';
import { quantizeBlockwise, toBfloat16, toFloat16 } from '../kernels/weight-quantization.js';
import { TARGET_MODULES, type TargetModule } from '../model/llama-modules.js';
import { fillUniform } from '../model/synthetic-weights.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: '2' },
    threads: { type: 'string', default: String(Math.min(2, availableParallelism())) },
    rounds: { type: 'string', default: '5' },
  },
});
const numLayers = Number(args.layers);
const threads = Number(args.threads);
const rounds = Number(args.rounds);
const WIDTHS = [1, 8, 256];
const HIDDEN = 2048;
const SHAPES: Record<TargetModule, [number, number]> = {
  q_proj: [2048, 2048],
  k_proj: [256, 2048],
  v_proj: [256, 2048],
  o_proj: [2048, 2048],
  gate_proj: [5632, 2048],
  up_proj: [5632, 2048],
  down_proj: [2048, 5632],
};

function progress(message: string): void {
  process.stderr.write(`[weight-formats] ${message}\n`);
}

/** Roughly normal (sum of two seeded uniforms), ±0.05 wide like an initialised Llama weight. */
function randomWeights(n: number, seed: number): Float32Array {
  const out = fillUniform(new Float32Array(n), seed, 0.025);
  const second = fillUniform(new Float32Array(n), seed ^ 0x5bd1e995, 0.025);
  for (let i = 0; i < n; i++) out[i] += second[i];
  return out;
}

interface Candidate {
  name: string;
  /** Bytes the weights take in this format. */
  bytesPerWeight: number;
  /** Session config entries this candidate needs. */
  sessionConfig?: Record<string, string>;
  /** The linear y = x·Wᵀ for W [N, K] (HF layout). */
  linear: (g: GraphBuilder, x: string, w: Float32Array, n: number, k: number, feeds: Feeds) => string;
}

interface Feeds {
  inputs: Record<string, ort.Tensor>;
  externalData: Array<{ path: string; data: Uint8Array }>;
}

let nextWeight = 0;
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function nbits(bits: 4 | 8, blockSize: number, accuracyLevel: number): Candidate {
  return {
    name: `MatMulNBits ${bits}-bit, block ${blockSize}, accuracy_level ${accuracyLevel}`,
    bytesPerWeight: bits / 8 + 4 / blockSize,
    linear: (g, x, w, n, k, feeds) => {
      const q = quantizeBlockwise(w, n, k, bits, blockSize);
      const id = nextWeight++;
      const kBlocks = k / blockSize;
      feeds.externalData.push({ path: `w${id}`, data: q.codes }, { path: `s${id}`, data: bytesOf(q.scales) });
      const b = g.external(`w${id}`, 'uint8', [n, kBlocks, (blockSize * bits) / 8], `w${id}`);
      const s = g.external(`s${id}`, 'float32', [n * kBlocks], `s${id}`);
      return g.op(
        'MatMulNBits',
        [x, b, s],
        { K: k, N: n, bits, block_size: blockSize, accuracy_level: accuracyLevel },
        { domain: 'com.microsoft' },
      );
    },
  };
}

/**
 * f16/bf16 initializers cast to f32 before a Gemm. With constant folding on, onnxruntime folds the
 * Cast at load (f32 weights again, in its memory); with it off, the Cast runs every step.
 */
function castThenGemm(type: 'float16' | 'bfloat16', folding: boolean): Candidate {
  return {
    name: `${type} weight → Cast → Gemm${folding ? ' (Cast folded at load)' : ''}`,
    bytesPerWeight: 2,
    sessionConfig: folding ? undefined : { 'optimization.disable_specified_optimizers': 'ConstantFolding' },
    linear: (g, x, w, n, k, feeds) => {
      const name = `w${nextWeight++}`;
      feeds.externalData.push({
        path: name,
        data: bytesOf(type === 'float16' ? toFloat16(w) : toBfloat16(w)),
      });
      const wf = g.op('Cast', [g.external(name, type, [n, k], name)], { to: 1 });
      return g.op('Gemm', [x, wf], { transB: 1 });
    },
  };
}

const CANDIDATES: Candidate[] = [
  {
    name: 'f32 Gemm (prepacked initializer)',
    bytesPerWeight: 4,
    linear: (g, x, w, n, k, feeds) => {
      const name = `w${nextWeight++}`;
      feeds.externalData.push({ path: name, data: bytesOf(w) });
      return g.op('Gemm', [x, g.external(name, 'float32', [n, k], name)], { transB: 1 });
    },
  },
  castThenGemm('float16', true),
  castThenGemm('bfloat16', false),
  {
    name: 'float16 input → Cast → Gemm',
    bytesPerWeight: 2,
    linear: (g, x, w, n, k, feeds) => {
      const name = `w${nextWeight++}`;
      feeds.inputs[name] = float16Tensor(toFloat16(w), [n, k]);
      return g.op('Gemm', [x, g.op('Cast', [g.input(name, 'float16', [n, k])], { to: 1 })], { transB: 1 });
    },
  },
  {
    name: 'float16 input in 4 MB row tiles → Cast → Gemm → Concat',
    bytesPerWeight: 2,
    linear: (g, x, w, n, k, feeds) => {
      const half = toFloat16(w);
      const tileRows = Math.max(1, Math.floor((4 << 20) / (k * 4)));
      const parts: string[] = [];
      for (let r = 0; r < n; r += tileRows) {
        const rows = Math.min(tileRows, n - r);
        const name = `w${nextWeight++}`;
        feeds.inputs[name] = new ort.Tensor('float16', half.subarray(r * k, (r + rows) * k), [rows, k]);
        parts.push(
          g.op('Gemm', [x, g.op('Cast', [g.input(name, 'float16', [rows, k])], { to: 1 })], { transB: 1 }),
        );
      }
      return parts.length === 1 ? parts[0] : g.op('Concat', parts, { axis: 1 });
    },
  },
  {
    name: 'float16 MatMul over an initializer (x cast to f16)',
    bytesPerWeight: 2,
    linear: (g, x, w, n, k, feeds) => {
      const name = `w${nextWeight++}`;
      const t = new Float32Array(n * k);
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) t[c * n + r] = w[r * k + c];
      feeds.externalData.push({ path: name, data: bytesOf(toFloat16(t)) });
      const x16 = g.op('Cast', [x], { to: 10 });
      const y = g.op('MatMul', [x16, g.external(name, 'float16', [k, n], name)]);
      return g.op('Cast', [y], { to: 1 });
    },
  },
  {
    name: 'int8 per-row DequantizeLinear → Gemm',
    bytesPerWeight: 1,
    linear: (g, x, w, n, k, feeds) => {
      const id = nextWeight++;
      const q = quantizeBlockwise(w, n, k, 8, k);
      const signed = new Int8Array(q.codes.length);
      for (let i = 0; i < signed.length; i++) signed[i] = q.codes[i] - 128;
      feeds.externalData.push(
        { path: `w${id}`, data: bytesOf(signed) },
        { path: `s${id}`, data: bytesOf(q.scales) },
      );
      const b = g.external(`w${id}`, 'int8', [n, k], `w${id}`);
      const s = g.external(`s${id}`, 'float32', [n], `s${id}`);
      return g.op('Gemm', [x, g.op('DequantizeLinear', [b, s], { axis: 0 })], { transB: 1 });
    },
  },
  {
    name: 'int8 per-column DynamicQuantizeMatMul',
    bytesPerWeight: 1,
    linear: (g, x, w, n, k, feeds) => {
      const id = nextWeight++;
      const q = quantizeBlockwise(w, n, k, 8, k);
      const signedT = new Int8Array(n * k);
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) signedT[c * n + r] = q.codes[r * k + c] - 128;
      feeds.externalData.push(
        { path: `w${id}`, data: bytesOf(signedT) },
        { path: `s${id}`, data: bytesOf(q.scales) },
      );
      const b = g.external(`w${id}`, 'int8', [k, n], `w${id}`);
      const s = g.external(`s${id}`, 'float32', [n], `s${id}`);
      return g.op('DynamicQuantizeMatMul', [x, b, s], {}, { domain: 'com.microsoft' });
    },
  },
  nbits(8, 32, 0),
  nbits(8, 32, 4),
  nbits(8, 128, 4),
  nbits(4, 32, 0),
  nbits(4, 32, 4),
  nbits(4, 128, 4),
];

const weights = new Map<string, Float32Array>();
for (let l = 0; l < numLayers; l++) {
  for (const m of TARGET_MODULES) {
    const [n, k] = SHAPES[m];
    weights.set(`${l}.${m}`, randomWeights(n * k, l * 7 + TARGET_MODULES.indexOf(m) + 1));
  }
}

/** The layers' linears chained as in a Llama layer, so each weight is read once per run. */
function buildGraph(c: Candidate): { bytes: Uint8Array; feeds: Feeds } {
  const g = new GraphBuilder('linears');
  const feeds: Feeds = { inputs: {}, externalData: [] };
  const lin = (x: string, l: number, m: TargetModule) => {
    const [n, k] = SHAPES[m];
    return c.linear(g, x, weights.get(`${l}.${m}`)!, n, k, feeds);
  };
  const scale = g.scalar(0.05);
  let x = g.input('x', 'float32', ['M', HIDDEN]);
  for (let l = 0; l < numLayers; l++) {
    const kv = g.op('Add', [lin(x, l, 'k_proj'), lin(x, l, 'v_proj')]);
    const attn = g.op('Add', [lin(x, l, 'q_proj'), g.op('ReduceMean', [kv], { axes: [1], keepdims: 1 })]);
    const h = g.op('Add', [x, lin(attn, l, 'o_proj')]);
    const mlp = g.op('Mul', [g.op('Tanh', [lin(h, l, 'gate_proj')]), lin(h, l, 'up_proj')]);
    x = g.op('Add', [h, g.op('Mul', [lin(mlp, l, 'down_proj'), scale])]);
  }
  g.op('Identity', [x], {}, { outputNames: ['y'] });
  g.output('y', 'float32', ['M', HIDDEN]);
  return { bytes: g.toBytes(), feeds };
}

interface Loaded {
  candidate: Candidate;
  session: ort.InferenceSession;
  inputs: Record<string, ort.Tensor>;
  rssMb: number;
  timesMs: number[][];
  error?: string;
}

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

const loaded: Loaded[] = [];
const failed: Array<{ name: string; error: string }> = [];
for (const candidate of CANDIDATES) {
  progress(`building ${candidate.name}`);
  const { bytes, feeds } = buildGraph(candidate);
  global.gc?.();
  const before = process.memoryUsage().rss;
  try {
    const session = await ort.InferenceSession.create(bytes, {
      ...sessionOptions,
      externalData: feeds.externalData,
      extra: candidate.sessionConfig ?? {},
    });
    const x = new ort.Tensor('float32', randomWeights(HIDDEN, 99), [1, HIDDEN]);
    await session.run({ ...feeds.inputs, x });
    loaded.push({
      candidate,
      session,
      inputs: feeds.inputs,
      rssMb: (process.memoryUsage().rss - before) / 2 ** 20,
      timesMs: WIDTHS.map(() => []),
    });
  } catch (error) {
    failed.push({ name: candidate.name, error: (error as Error).message.split('\n')[0] });
    progress(`  failed: ${(error as Error).message.split('\n')[0]}`);
  }
}

const outputs = new Map<Loaded, Float32Array>();
for (let wi = 0; wi < WIDTHS.length; wi++) {
  const m = WIDTHS[wi];
  const x = new ort.Tensor('float32', randomWeights(m * HIDDEN, 1234 + m), [m, HIDDEN]);
  const perWidthRounds = m >= 64 ? Math.max(2, Math.ceil(rounds / 2)) : rounds;
  for (let r = 0; r < perWidthRounds; r++) {
    for (const s of loaded) {
      const t0 = performance.now();
      const out = await s.session.run({ ...s.inputs, x });
      s.timesMs[wi].push(performance.now() - t0);
      if (wi === 0 && r === 0) outputs.set(s, out.y.data as Float32Array);
    }
    progress(`M=${m} round ${r + 1}/${perWidthRounds}`);
  }
}

const reference = outputs.get(loaded[0])!;
const stats = (t: number[]) => {
  const s = [...t].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const f3 = (t: number[]) => {
  const { min, median, max } = stats(t);
  return `${min.toFixed(1)} / ${median.toFixed(1)} / ${max.toFixed(1)}`;
};
let params = 0;
for (const w of weights.values()) params += w.length;
const rows = loaded.map((s) => {
  const out = outputs.get(s)!;
  let maxAbs = 0;
  let refMax = 0;
  for (let i = 0; i < out.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(out[i] - reference[i]));
    refMax = Math.max(refMax, Math.abs(reference[i]));
  }
  const decodeMedian = stats(s.timesMs[0]).median;
  return {
    format: s.candidate.name,
    'weight MB': Number(((params * s.candidate.bytesPerWeight) / 1e6).toFixed(1)),
    'RSS added MB': Number(s.rssMb.toFixed(0)),
    'M=1 ms min/med/max': f3(s.timesMs[0]),
    'M=8 ms': f3(s.timesMs[1]),
    'M=256 ms': f3(s.timesMs[2]),
    'M=1 GB/s of weights': Number(((params * s.candidate.bytesPerWeight) / (decodeMedian * 1e6)).toFixed(1)),
    'M=256 GFLOP/s': Number(((2 * params * 256) / (stats(s.timesMs[2]).median * 1e6)).toFixed(1)),
    'max |Δ| vs f32 (M=1) / max |y|': Number((maxAbs / refMax).toExponential(2)),
  };
});
for (const s of loaded) await s.session.release();

const files = writeBenchReport({
  name: 'onnx-weight-formats',
  title: 'Low-precision linear weights in onnxruntime-node (CPU): which op graph',
  context: {
    ...machineContext(),
    onnxruntime: ort.env.versions.common,
    threads,
    layers: `${numLayers} TinyLlama-width layers (${(params / 1e6).toFixed(1)} M weights)`,
    rounds,
  },
  rows,
  chart: {
    unit: 'decode M=1 ms, median',
    bars: loaded.map((s) => ({ label: s.candidate.name, value: stats(s.timesMs[0]).median })),
  },
  notes: failed.map((f) => `${f.name}: refused by onnxruntime: ${f.error}`),
});
progress(`wrote ${files.join(', ')}`);
