/**
 * Decode at batch 8 where every sequence has its own LoRA adapter (8 distinct rank-16 adapters on
 * all 7 modules), Loom's onnx engine against llama.cpp on the same synthetic TinyLlama-shaped
 * weights and adapters, in one run. Loom runs the 8 sequences as one batch; llama.cpp applies a
 * LoRA per context, so it needs a context per adapter and runs them one after another (what a
 * llama.cpp server does for distinct adapters). Each system's base model at batch 8 (llama.cpp:
 * one context, 8 sequences batched) is measured beside it. Rounds interleave the systems.
 *
 * Adapters go to llama.cpp as LoRA GGUFs (bench/llama-cpp/gguf-writer.ts, writeLoraGguf); the
 * first greedy tokens of each adapter's sequence are compared with Loom f32's, so a conversion
 * that llama.cpp read differently would show.
 *
 *   npm install --prefix /tmp/llamacpp --ignore-scripts node-llama-cpp@3
 *   npx tsx bench/llama-cpp-lora-batch.ts --llama-cpp /tmp/llamacpp [--layers 22] [--rounds 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { SequenceStep } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { decodeWeightBytes, type WeightFormat } from '../kernels/weight-quantization.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import type { LoraAdapter } from '../model/lora-adapter.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { distinctAdapters } from './issue-adapters.js';
import { type GgufWeightType, writeGguf, writeLoraGguf } from './llama-cpp/gguf-writer.js';
import { type LlamaCpp, type LlamaCppContext, loadLlamaCpp } from './llama-cpp/node-llama-cpp.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    'llama-cpp': { type: 'string', default: '/tmp/llamacpp' },
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
  },
});
const ROUNDS = Number(args.rounds);
const STEPS = Number(args.steps);
const THREADS = Number(args.threads);
const BATCH = 8;
const RANK = 16;
const CONTEXT = 32;
const GREEDY = 4;

function progress(message: string): void {
  process.stderr.write(`[llama-cpp-lora-batch] ${message}\n`);
}

/** One system: a round of `steps` batch-8 decode steps after a CONTEXT-token prompt per sequence. */
interface System {
  label: string;
  /** ms per step, and each sequence's first GREEDY tokens (with adapters). */
  decode(withAdapters: boolean, round: number, steps: number): Promise<{ ms: number[]; tokens: number[][] }>;
  close(): Promise<void>;
}

const prompt = (seq: number, round: number, vocab: number) =>
  Array.from({ length: CONTEXT }, (_, i) => 259 + ((seq * 7919 + round * 104729 + i * 31) % (vocab - 259)));

async function loomSystem(
  weights: ReturnType<typeof syntheticWeights>,
  adapters: LoraAdapter[],
  format: WeightFormat,
): Promise<System> {
  const config = weights.config;
  const layout = kvLayout(config);
  const blocks = Math.ceil((CONTEXT + STEPS + GREEDY + 2) / layout.tokensPerPage) + 1;
  const adapterPages = adapters.reduce((n, a) => n + adapterPageCount(config, a), 0);
  const pool = new PagePool(1 + adapterPages + BATCH * blocks * layout.pagesPerBlock, config.hiddenSize);
  const engine = await OnnxEngine.create(weights, pool, { threads: THREADS, weightFormat: format });
  const layouts: AdapterLayout[] = adapters.map((a) => {
    const placed = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
    engine.writeAdapter(placed, storeAdapter(a));
    return placed;
  });
  const kv = new KvCache(pool, layout);
  let nextId = 1;
  return {
    label: `Loom onnx ${format}`,
    async decode(withAdapters, round, steps) {
      const ids = Array.from({ length: BATCH }, () => nextId++);
      const step = async (tokensOf: (i: number) => number[], pos: number) => {
        const sequences: SequenceStep[] = ids.map((id, i) => {
          const tokens = tokensOf(i);
          if (!kv.reserve(id, pos + tokens.length)) throw new Error('bench pool too small');
          const adapter = withAdapters ? layouts[i] : null;
          return { seqId: id, tokens, startPos: pos, pageTable: kv.pageTable(id), adapter, logits: 'last' };
        });
        const logits = await engine.step({ sequences });
        const vocab = config.vocabSize;
        return ids.map((_, i) => {
          let best = 0;
          for (let v = 1; v < vocab; v++) if (logits[i * vocab + v] > logits[i * vocab + best]) best = v;
          return best;
        });
      };
      let next = await step((i) => prompt(i, round, config.vocabSize), 0);
      const tokens = next.map((t) => [t]);
      const ms: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        next = await step((i) => [next[i]], CONTEXT + s);
        ms.push(performance.now() - t0);
        next.forEach((t, i) => {
          tokens[i].push(t);
        });
      }
      for (const id of ids) kv.free(id);
      return { ms, tokens: tokens.map((t) => t.slice(0, GREEDY)) };
    },
    close: () => engine.close(),
  };
}

async function llamaCppSystem(
  llama: LlamaCpp,
  type: GgufWeightType,
  model: string,
  loras: string[],
  vocab: number,
): Promise<System> {
  const m = await llama.loadModel({ modelPath: model });
  const options = { contextSize: CONTEXT + STEPS + GREEDY + 8, batchSize: CONTEXT * BATCH, threads: THREADS };
  const shared = await m.createContext({ ...options, sequences: BATCH });
  const perAdapter: LlamaCppContext[] = [];
  for (const filePath of loras)
    perAdapter.push(await m.createContext({ ...options, lora: { adapters: [{ filePath }] } }));
  // A context hands out each of its sequences once: they are kept and cleared between rounds.
  const batched = Array.from({ length: BATCH }, () => shared.getSequence());
  const adapted = perAdapter.map((c) => c.getSequence());
  return {
    label: `llama.cpp ${type}`,
    async decode(withAdapters, round, steps) {
      const sequences = withAdapters ? adapted : batched;
      const iterators = sequences.map((s, i) =>
        s.evaluate(prompt(i, round, vocab), { temperature: 0 })[Symbol.asyncIterator](),
      );
      const tokens: number[][] = sequences.map(() => []);
      const advance = async () => {
        // Distinct contexts (one per adapter) run one after another; sequences of one context are
        // batched by node-llama-cpp when they advance together.
        const out = withAdapters
          ? await iterators.reduce<Promise<IteratorResult<number>[]>>(
              async (done, it) => [...(await done), await it.next()],
              Promise.resolve([]),
            )
          : await Promise.all(iterators.map((it) => it.next()));
        out.forEach((r, i) => {
          tokens[i].push(r.value as number);
        });
      };
      await advance();
      const ms: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        await advance();
        ms.push(performance.now() - t0);
      }
      for (const it of iterators) await it.return?.();
      for (const s of sequences) await s.clearHistory();
      return { ms, tokens: tokens.map((t) => t.slice(0, GREEDY)) };
    },
    close: async () => {
      for (const c of [shared, ...perAdapter]) await c.dispose();
      await m.dispose();
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0].toFixed(1)} / ${median(s).toFixed(1)} / ${s[s.length - 1].toFixed(1)}`;
};

/** Bytes of f32 A and B a step reads for the batch's adapters (each read once). */
function adapterBytes(adapters: readonly LoraAdapter[]): number {
  let floats = 0;
  for (const a of adapters)
    for (const layer of a.layers)
      for (const pair of Object.values(layer)) floats += pair.a.length + pair.b.length;
  return floats * 4;
}

/**
 * What the adapters cost a step bound by memory traffic: their bytes over the base weights'. The
 * int8 base reads a quarter of the f32 bytes, the f32 adapters the same, so its share is 4× f32's.
 */
function boundNote(config: LlamaConfig, adapters: readonly LoraAdapter[]): string {
  const lora = adapterBytes(adapters);
  const share = (format: WeightFormat) => {
    const base = decodeWeightBytes(config, format);
    return `${format} base ${(base / 1e9).toFixed(2)} GB, +${((lora / base) * 100).toFixed(0)} %`;
  };
  return `Floor under the adapter overhead where a step is bound by memory traffic: the ${BATCH} adapters' A and B are ${(lora / 1e6).toFixed(0)} MB (f32) a step reads beside the base weights (${share('f32')}; ${share('int8')}).`;
}

async function main(): Promise<void> {
  const spec = { ...TINYLLAMA_SPEC, numLayers: Number(args.layers) };
  progress(`synthetic TinyLlama shape, ${spec.numLayers} layers, ${THREADS} threads`);
  const weights = syntheticWeights(spec);
  const config = weights.config;
  const adapters = distinctAdapters(config, BATCH, RANK);
  const dir = mkdtempSync(join(tmpdir(), 'loom-lora-gguf-'));
  try {
    const loras = adapters.map((a, i) => {
      const path = join(dir, `lora-${i}.gguf`);
      writeLoraGguf(path, a, config);
      return path;
    });
    const llama = await loadLlamaCpp(args['llama-cpp']);
    const systems: System[] = [];
    for (const format of ['f32', 'int8'] as const) systems.push(await loomSystem(weights, adapters, format));
    for (const type of ['f32', 'q8_0'] as const) {
      progress(`writing GGUF ${type}`);
      const path = join(dir, `model-${type}.gguf`);
      writeGguf(path, weights, type);
      systems.push(await llamaCppSystem(llama, type, path, loras, config.vocabSize));
    }
    const times = systems.map(() => ({ base: [] as number[], lora: [] as number[] }));
    const greedy: number[][][] = [];
    let baseGreedy: number[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      progress(`round ${round + 1}/${ROUNDS}`);
      for (const [i, system] of systems.entries()) {
        const base = await system.decode(false, round, STEPS);
        times[i].base.push(...base.ms);
        const lora = await system.decode(true, round, STEPS);
        times[i].lora.push(...lora.ms);
        if (round === 0) greedy[i] = lora.tokens;
        if (round === 0 && i === 0) baseGreedy = base.tokens;
      }
    }
    for (const system of systems) await system.close();
    const rows = systems.map((system, i) => {
      const equal = greedy[i].reduce(
        (n, seq, s) => n + seq.filter((t, k) => t === greedy[0][s][k]).length,
        0,
      );
      return {
        system: system.label,
        'base batch 8 ms/step min/med/max': spread(times[i].base),
        '8 distinct adapters ms/step min/med/max': spread(times[i].lora),
        'adapter overhead (medians)': `${((median(times[i].lora) / median(times[i].base) - 1) * 100).toFixed(0)} %`,
        [`greedy tokens with adapters equal to Loom f32's (of ${BATCH * GREEDY})`]: equal,
      };
    });
    const files = writeBenchReport({
      name: 'llama-cpp-lora-batch',
      title: 'Batch 8 with 8 distinct LoRA adapters: Loom (onnx engine) and llama.cpp',
      context: {
        ...machineContext(),
        model: `synthetic TinyLlama shape, ${spec.numLayers} of 22 layers`,
        adapters: `${BATCH} × rank ${RANK}, all 7 modules, f32`,
        threads: THREADS,
        rounds: ROUNDS,
        'decode steps per round': STEPS,
        'llama.cpp':
          'node-llama-cpp 3 (CPU build); base and LoRA GGUFs written by bench/llama-cpp/gguf-writer.ts',
      },
      rows,
      chart: {
        unit: '8 distinct adapters at batch 8, median ms/step',
        bars: systems.map((system, i) => ({ label: system.label, value: median(times[i].lora) })),
      },
      notes: [
        `A step decodes one token for each of ${BATCH} sequences after a ${CONTEXT}-token prompt each. Loom: one engine step over the batch (each sequence its own adapter). llama.cpp: a LoRA applies to a whole context, so distinct adapters take a context each, stepped one after another; its base row is one context with ${BATCH} sequences batched.`,
        boundNote(config, adapters),
        'llama.cpp times are the gaps between the tokens node-llama-cpp yields (its sampling and JS included); Loom times are engine.step calls with a host argmax.',
        `Greedy agreement with Loom f32 checks that llama.cpp reads the LoRA GGUFs as Loom reads the adapters (8-bit bases are not expected to agree exactly on a random-weight model). The adapters matter: Loom f32's base model gives ${baseGreedy.reduce((n, seq, s) => n + seq.filter((t, k) => t === greedy[0][s][k]).length, 0)} of those ${BATCH * GREEDY} tokens.`,
      ],
    });
    progress(`wrote ${files.join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
