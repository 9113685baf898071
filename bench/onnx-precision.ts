/**
 * The onnx engine's base-weight storage formats side by side, in one run on one model: accuracy
 * against f32 (logit error, top-1 and greedy agreement, perplexity of held-out text) and speed
 * (prefill tok/s, decode batch 1 ms/step) next to the memory-bandwidth bound measured in the same
 * run. Every format gets the same plans with the same page tables (each engine has its own page
 * storage), and rounds interleave the formats step by step, so load from elsewhere on a shared
 * machine hits them alike; min / median / max are kept.
 *
 * Text is real English prose from this repository (README.md for prompts, the onnx kernel README
 * as held-out text), tokenized as the synthetic byte tokenizer does (UTF-8 bytes). On a synthetic
 * model the logits are those of random weights, so perplexities are large; what the table shows
 * is how far each format moves the model off its f32 self.
 *
 * Every format's engine lives at once (that is what lets steps interleave): at the full 22 layers
 * that is ~19 GB of process memory (f32 weights and onnxruntime's packed copy alone take 8.8 GB),
 * so a smaller machine takes --layers N or --formats f32,int8.
 *
 * With --model DIR, a Hugging Face checkpoint (the trained default model, say) and its own
 * tokenizer replace the synthetic model, and the report is onnx-precision-<folder name>.
 *
 * With --engine webgpu the webgpu engine's storages go through the same text (one device, an
 * engine per format; f16 where the adapter has shader-f16), and the report is webgpu-precision…:
 * its int8/int4 codes are the onnx engine's, but multiplied with f32 activations (MatMulNBits
 * rounds activations to int8 too). Its speed columns are the adapter's: on a software adapter
 * (lavapipe) they say nothing about a GPU.
 *
 *   npx tsx bench/onnx-precision.ts [--engine onnx|webgpu] [--model DIR] [--report NAME] [--layers N] [--threads N] [--formats f32,int8] [--rounds N]
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { Engine, SequenceStep } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { GraphBuilder } from '../kernels/onnx/onnx-model.js';
import { argmax } from '../kernels/sample.js';
import { decodeWeightBytes, WEIGHT_FORMATS, type WeightFormat } from '../kernels/weight-quantization.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { loadModel } from '../model/load-model.js';
import type { ModelWeights } from '../model/model-weights.js';
import { BOS_ID, FIRST_BYTE_ID, syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string', default: 'onnx' },
    model: { type: 'string' },
    report: { type: 'string' },
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    threads: { type: 'string', default: '2' },
    formats: { type: 'string', default: WEIGHT_FORMATS.join(',') },
    prompts: { type: 'string', default: '6' },
    'prompt-tokens': { type: 'string', default: '48' },
    generate: { type: 'string', default: '16' },
    'held-out-tokens': { type: 'string', default: '128' },
    prefill: { type: 'string', default: '512' },
    'decode-context': { type: 'string', default: '64' },
    'decode-steps': { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
if (args.engine !== 'onnx' && args.engine !== 'webgpu') throw new Error('--engine: onnx or webgpu');
const engineKind = args.engine;
const numLayers = Number(args.layers);
const threads = Number(args.threads);
const formats = args.formats.split(',') as WeightFormat[];
for (const f of formats) if (!WEIGHT_FORMATS.includes(f)) throw new Error(`--formats: unknown format ${f}`);
if (formats[0] !== 'f32') formats.unshift('f32');
const numPrompts = Number(args.prompts);
const promptTokens = Number(args['prompt-tokens']);
const generate = Number(args.generate);
const heldOutTokens = Number(args['held-out-tokens']);
const prefillTokens = Number(args.prefill);
const decodeContext = Number(args['decode-context']);
const decodeSteps = Number(args['decode-steps']);
const rounds = Number(args.rounds);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function progress(message: string): void {
  process.stderr.write(`[${engineKind}-precision] ${message}\n`);
}

/** Opens the webgpu device the engines share (the import is lazy: onnx runs never load Dawn). */
async function webgpuEngines(): Promise<{
  create: (weights: ModelWeights, pool: PagePool, format: WeightFormat) => Promise<Engine>;
  adapter: string;
  close: () => void;
}> {
  const { createWebGpuContext } = await import('../kernels/webgpu/device.js');
  const { WebGpuEngine } = await import('../kernels/webgpu/webgpu-engine.js');
  const context = await createWebGpuContext();
  for (const f of formats)
    if (f === 'f16' && !context.hasF16) throw new Error('--formats f16: this adapter has no shader-f16');
  return {
    create: (weights, pool, format) => WebGpuEngine.create(weights, pool, { context, weightDtype: format }),
    adapter: `${context.adapter.description || context.adapter.device}${context.adapter.isFallbackAdapter ? ' (software)' : ''}`,
    close: () => context.destroy(),
  };
}

/** Prose with the Markdown tables and code fences dropped. */
function prose(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .filter((line) => !line.startsWith('|') && !line.startsWith('```') && !line.startsWith('    '))
    .join('\n');
}

/** The synthetic byte tokenizer's ids: UTF-8 bytes. */
function byteTokens(text: string): number[] {
  return Array.from(new TextEncoder().encode(text), (b) => FIRST_BYTE_ID + b);
}

interface Stats {
  min: number;
  median: number;
  max: number;
}
function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
}
const fmt = (s: Stats, digits = 1) =>
  `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}`;

/**
 * Memory-read bandwidth: onnxruntime's ReduceSum over a 256 MiB zero-copy input with `threads`
 * (eight times any L3 here; larger would crowd the engines out of memory).
 */
async function bandwidthSession(): Promise<() => Promise<number>> {
  const n = 2 ** 26;
  const g = new GraphBuilder('bandwidth');
  const big = g.input('big', 'float32', [64, n / 64]);
  g.op('ReduceSum', [big, g.ints([1])], { keepdims: 0 }, { outputNames: ['sum'] });
  g.output('sum', 'float32', [64]);
  const session = await ort.InferenceSession.create(g.toBytes(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const data = new Float32Array(n).fill(1);
  const feeds = { big: new ort.Tensor('float32', data, [64, n / 64]) };
  await session.run(feeds);
  return async () => {
    const t0 = performance.now();
    await session.run(feeds);
    return (n * 4) / ((performance.now() - t0) * 1e6);
  };
}

function logSoftmaxAt(row: Float32Array, index: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[index] - max - Math.log(sum);
}

interface Accuracy {
  maxAbs: number;
  relSum: number;
  rows: number;
  top1Same: number;
  greedySame: number;
  greedyTotal: number;
  greedyExact: number;
  nll: number;
  nllTokens: number;
}

async function main(): Promise<void> {
  const loaded = args.model ? await loadModel(args.model) : null;
  progress(
    `${loaded ? loaded.dir : `synthetic TinyLlama-shaped weights, ${numLayers} layers`}; formats ${formats.join(', ')}`,
  );
  const weights = loaded ? loaded.weights : syntheticWeights({ ...TINYLLAMA_SPEC, numLayers });
  const textTokens = (file: string) =>
    loaded ? loaded.tokenizer.encode(prose(file), false) : byteTokens(prose(file));
  const bos = loaded ? (loaded.config.bosTokenId ?? BOS_ID) : BOS_ID;
  const config = weights.config;
  const layout = kvLayout(config);
  const longest = Math.max(
    promptTokens + generate,
    heldOutTokens,
    prefillTokens,
    decodeContext + decodeSteps * rounds + 1,
  );
  const pool = new PagePool(
    1 + 3 * Math.ceil(longest / layout.tokensPerPage + 1) * layout.pagesPerBlock,
    config.hiddenSize,
  );
  const kv = new KvCache(pool, layout);

  const webgpu = engineKind === 'webgpu' ? await webgpuEngines() : null;
  const engines = new Map<WeightFormat, Engine>();
  const created: Record<string, { seconds: number; rssMiB: number }> = {};
  for (const format of formats) {
    const rss = process.memoryUsage().rss;
    const t0 = performance.now();
    engines.set(
      format,
      webgpu
        ? await webgpu.create(weights, pool, format)
        : await OnnxEngine.create(weights, pool, { threads, weightFormat: format }),
    );
    created[format] = {
      seconds: (performance.now() - t0) / 1000,
      rssMiB: (process.memoryUsage().rss - rss) / 2 ** 20,
    };
    progress(
      `${format} engine: ${created[format].seconds.toFixed(1)} s, +${created[format].rssMiB.toFixed(0)} MiB`,
    );
  }
  const step = (id: number, tokens: number[], startPos: number, logits: SequenceStep['logits']) => {
    if (!kv.reserve(id, startPos + tokens.length)) throw new Error('bench pool too small');
    return {
      sequences: [{ seqId: id, tokens, startPos, pageTable: kv.pageTable(id), adapter: null, logits }],
    };
  };
  const vocab = config.vocabSize;

  // Accuracy: teacher-forced logits and greedy continuations of real-text prompts.
  const text = textTokens('README.md');
  const accuracy = new Map<WeightFormat, Accuracy>(
    formats.map((f) => [
      f,
      {
        maxAbs: 0,
        relSum: 0,
        rows: 0,
        top1Same: 0,
        greedySame: 0,
        greedyTotal: 0,
        greedyExact: 0,
        nll: 0,
        nllTokens: 0,
      },
    ]),
  );
  const stride = Math.floor(text.length / numPrompts);
  for (let p = 0; p < numPrompts; p++) {
    const prompt = [bos, ...text.slice(p * stride, p * stride + promptTokens - 1)];
    const plan = step(1, prompt, 0, 'all');
    const logits = new Map<WeightFormat, Float32Array>();
    for (const [f, e] of engines) logits.set(f, await e.step(plan));
    const ref = logits.get('f32')!;
    for (const f of formats) {
      const a = accuracy.get(f)!;
      const out = logits.get(f)!;
      for (let r = 0; r < prompt.length; r++) {
        const row = out.subarray(r * vocab, (r + 1) * vocab);
        const refRow = ref.subarray(r * vocab, (r + 1) * vocab);
        let diff2 = 0;
        let ref2 = 0;
        for (let i = 0; i < vocab; i++) {
          const d = row[i] - refRow[i];
          a.maxAbs = Math.max(a.maxAbs, Math.abs(d));
          diff2 += d * d;
          ref2 += refRow[i] * refRow[i];
        }
        a.relSum += Math.sqrt(diff2 / ref2);
        a.rows++;
        if (argmax(row) === argmax(refRow)) a.top1Same++;
      }
    }
    // Greedy: each format continues from its own argmax; agreement is position by position with f32.
    const continuations = new Map<WeightFormat, number[]>();
    for (const f of formats) {
      const out = logits.get(f)!;
      continuations.set(f, [argmax(out.subarray((prompt.length - 1) * vocab))]);
    }
    for (let g = 1; g < generate; g++) {
      for (const [f, e] of engines) {
        const seq = continuations.get(f)!;
        const out = await e.step(step(1, [seq[seq.length - 1]], prompt.length + g - 1, 'last'));
        seq.push(argmax(out));
      }
    }
    const refSeq = continuations.get('f32')!;
    for (const f of formats) {
      const a = accuracy.get(f)!;
      const seq = continuations.get(f)!;
      let same = 0;
      while (same < seq.length && seq[same] === refSeq[same]) same++;
      a.greedySame += same;
      a.greedyTotal += seq.length;
      if (same === seq.length) a.greedyExact++;
    }
    kv.free(1);
    progress(`prompt ${p + 1}/${numPrompts}`);
  }
  const heldOut = [bos, ...textTokens('kernels/onnx/README.md').slice(0, heldOutTokens - 1)];
  for (const [f, e] of engines) {
    const out = await e.step(step(2, heldOut, 0, 'all'));
    const a = accuracy.get(f)!;
    for (let r = 0; r + 1 < heldOut.length; r++) {
      a.nll -= logSoftmaxAt(out.subarray(r * vocab, (r + 1) * vocab), heldOut[r + 1]);
      a.nllTokens++;
    }
  }
  kv.free(2);

  // Speed: prefill and decode batch 1, interleaved by format, with the bandwidth in between.
  const bandwidth = await bandwidthSession();
  const bandwidths: number[] = [];
  const prefillMs = new Map<WeightFormat, number[]>(formats.map((f) => [f, []]));
  const decodeMs = new Map<WeightFormat, number[]>(formats.map((f) => [f, []]));
  const prefillPrompt = Array.from({ length: prefillTokens }, (_, i) => text[i % text.length]);
  const decodePrompt = text.slice(0, decodeContext);
  for (const e of engines.values()) await e.step(step(4, decodePrompt, 0, 'last'));
  let decodePos = decodeContext;
  for (let r = 0; r < rounds; r++) {
    bandwidths.push(await bandwidth());
    for (const [f, e] of engines) {
      const t0 = performance.now();
      await e.step(step(3, prefillPrompt, 0, 'last'));
      prefillMs.get(f)!.push(performance.now() - t0);
    }
    for (let s = 0; s < decodeSteps; s++) {
      for (const [f, e] of engines) {
        const plan = step(4, [text[(decodePos + 7) % text.length]], decodePos, 'last');
        const t0 = performance.now();
        await e.step(plan);
        decodeMs.get(f)!.push(performance.now() - t0);
      }
      decodePos++;
    }
    bandwidths.push(await bandwidth());
    progress(`speed round ${r + 1}/${rounds}`);
  }
  for (const e of engines.values()) await e.close();
  webgpu?.close();

  const bw = stats(bandwidths);
  const refNll = accuracy.get('f32')!.nll / accuracy.get('f32')!.nllTokens;
  const rows = formats.map((f) => {
    const a = accuracy.get(f)!;
    const decode = stats(decodeMs.get(f)!);
    const prefill = stats(prefillMs.get(f)!.map((ms) => (1000 * prefillTokens) / ms));
    // The fastest probe: load from elsewhere only ever slows a probe down, as it does a step.
    const boundMs = decodeWeightBytes(config, f) / (bw.max * 1e6);
    const nll = a.nll / a.nllTokens;
    return {
      format: f,
      'linear weights GB': Number((decodeWeightBytes(config, f) / 1e9).toFixed(3)),
      'max |Δlogit|': Number(a.maxAbs.toPrecision(3)),
      'mean rel. logit error': Number((a.relSum / a.rows).toExponential(2)),
      'top-1 agreement': `${((100 * a.top1Same) / a.rows).toFixed(1)} %`,
      'greedy agreement': `${((100 * a.greedySame) / a.greedyTotal).toFixed(1)} % (${a.greedyExact}/${numPrompts} exact)`,
      'held-out NLL nats/token (Δ vs f32)': `${nll.toFixed(3)} (${f === 'f32' ? '—' : `${nll - refNll >= 0 ? '+' : ''}${(nll - refNll).toFixed(3)}`})`,
      'prefill tok/s min/med/max': fmt(prefill),
      'decode b1 ms min/med/max': fmt(decode),
      'bandwidth bound ms': Number(boundMs.toFixed(1)),
      'bound / min, / median': `${((100 * boundMs) / decode.min).toFixed(0)} %, ${((100 * boundMs) / decode.median).toFixed(0)} %`,
      'engine start s': Number(created[f].seconds.toFixed(1)),
      'RSS added MiB': Number(created[f].rssMiB.toFixed(0)),
    };
  });
  const files = writeBenchReport({
    name:
      args.report ?? (loaded ? `${engineKind}-precision-${basename(loaded.dir)}` : `${engineKind}-precision`),
    title: `${engineKind} engine base-weight formats: accuracy vs f32 and speed`,
    context: {
      ...machineContext(),
      'load average at end': loadavg()
        .map((x) => x.toFixed(2))
        .join(' '),
      ...(webgpu ? { 'webgpu adapter': webgpu.adapter } : { onnxruntime: ort.env.versions.common, threads }),
      model: loaded
        ? `${loaded.dir} (hidden ${config.hiddenSize}, ${config.numLayers} layers, vocab ${config.vocabSize})`
        : `synthetic TinyLlama shape (hidden 2048, GQA 32/4, MLP 5632, vocab 32000), ${numLayers} of 22 layers`,
      prompts: `${numPrompts} × ${promptTokens} tokens of README.md, ${generate} greedy tokens each`,
      'held-out text': `${heldOutTokens} tokens of kernels/onnx/README.md`,
      speed: `${rounds} rounds, formats interleaved: a ${prefillTokens}-token prefill each, then ${decodeSteps} decode steps at batch 1 after a ${decodeContext}-token context`,
      'memory-read bandwidth (ReduceSum over 256 MiB, min/median/max GB/s)': fmt(bw),
    },
    rows,
    chart: {
      unit: 'decode batch 1, ms/step, median',
      bars: rows.map((r) => ({ label: r.format, value: stats(decodeMs.get(r.format)!).median })),
    },
    notes: [
      'max |Δlogit| and mean rel. logit error (‖Δ‖₂/‖f32‖₂ per row, averaged) over every position of the teacher-forced prompts; top-1 agreement over the same rows.',
      'greedy agreement: generated positions equal to f32’s before the first divergence, over all generated positions; exact: continuations equal throughout.',
      'held-out NLL: mean negative log-likelihood of each next token of the held-out text; perplexity is its exp, and a perplexity delta of x % is a NLL delta of ln(1 + x/100). The synthetic model’s random weights give huge perplexities; the delta is what a format changes.',
      'bandwidth bound: bytes of the linear weights and lm_head in the format (scales included) / the highest bandwidth the probe measured in this run (load elsewhere only slows it); embeddings, norms, KV and activations left out. bound / min compares it with the fastest step, bound / median with the typical one.',
      webgpu
        ? 'webgpu: the gemm kernels read each storage (f16 as f16, bf16 as the top half of an f32, int8/int4 codes times their block scale) and multiply in f32, activations unrounded; a tied lm_head is a copy in the format only for int8/int4. Speed on a software adapter is the CPU running WGSL, nothing like a GPU.'
        : 'int8/int4: MatMulNBits at accuracy_level 4 (activations rounded to int8 per block too); f16/bf16: f16 input tiles cast to f32 before each Gemm (onnxruntime has no x86 f16 GEMM).',
    ],
  });
  progress(`wrote ${files.join(', ')}`);
}

await main();
