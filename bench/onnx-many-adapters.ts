/**
 * What a decode step of the onnx engine costs when its sequences carry many distinct adapters:
 * 32 sequences on the base model, all on one adapter, or each on its own adapter (32 distinct),
 * with ranks uniform 8 or mixed 8/16/32/64 on all 7 modules. Steps of the three cases are
 * interleaved, and each is timed in CPU time of this process (one onnxruntime thread), which
 * other load on a shared machine disturbs far less than wall time; min and median are kept.
 *
 *   npx tsx bench/onnx-many-adapters.ts [--steps 40] [--batch 32] [--model default|tinyllama] [--threads 1]
 *
 * --model tinyllama writes onnx-many-adapters-tinyllama.* (steps of seconds on 2 cores: --steps 8);
 * --threads N (onnxruntime's intra-op threads; CPU time then counts every thread) adds -threadsN.
 */
import { parseArgs } from 'node:util';
import type { SequenceStep } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../memory/adapter-layout.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import { storeAdapter } from '../model/stored-adapter.js';
import { DEFAULT_SPEC, syntheticAdapter, syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '40' },
    batch: { type: 'string', default: '32' },
    model: { type: 'string', default: 'default' },
    threads: { type: 'string', default: '1' },
  },
});
const THREADS = Number(args.threads);
const STEPS = Number(args.steps);
const BATCH = Number(args.batch);
const PROMPT = 16;
const MIXES = { 'uniform 8': [8], 'mixed 8–64': [8, 16, 32, 64] } as const;
const SPEC = args.model === 'tinyllama' ? TINYLLAMA_SPEC : DEFAULT_SPEC;

function progress(message: string): void {
  process.stderr.write(`[onnx-many-adapters] ${message}\n`);
}

async function measureMix(ranks: readonly number[]) {
  const weights = syntheticWeights(SPEC);
  const config = weights.config;
  const layout = kvLayout(config);
  const adapters = Array.from({ length: BATCH }, (_, i) =>
    syntheticAdapter(config, {
      name: `a${i}`,
      rank: ranks[i % ranks.length],
      alpha: 16,
      targetModules: [...TARGET_MODULES],
      seed: 100 + i,
    }),
  );
  const adapterPages = adapters.reduce((sum, a) => sum + adapterPageCount(config, a), 0);
  const blocksPerSequence = Math.ceil((PROMPT + STEPS + 2) / layout.tokensPerPage) + 1;
  const pool = new PagePool(
    1 + adapterPages + 3 * BATCH * blocksPerSequence * layout.pagesPerBlock,
    config.hiddenSize,
  );
  const engine = await OnnxEngine.create(weights, pool, { threads: THREADS });
  const kv = new KvCache(pool, layout);
  const layouts: AdapterLayout[] = adapters.map((a) => {
    const placed = layoutAdapter(config, a, pool.allocate(adapterPageCount(config, a), 'adapter'));
    engine.writeAdapter(placed, storeAdapter(a));
    return placed;
  });
  const cases: Record<string, (i: number) => AdapterLayout | null> = {
    'base model': () => null,
    'one adapter': () => layouts[0],
    [`${BATCH} distinct adapters`]: (i) => layouts[i],
  };
  let nextSeq = 0;
  const modes = Object.entries(cases).map(([name, adapterOf]) => {
    const ids = Array.from({ length: BATCH }, () => nextSeq++);
    let pos = 0;
    const step = async (length: number): Promise<number> => {
      const sequences: SequenceStep[] = ids.map((id, i) => {
        if (!kv.reserve(id, pos + length)) throw new Error('bench pool too small');
        const tokens = Array.from({ length }, (_, k) => (id * 7 + k + pos) % config.vocabSize);
        return {
          seqId: id,
          tokens,
          startPos: pos,
          pageTable: kv.pageTable(id),
          adapter: adapterOf(i),
          logits: 'last',
        };
      });
      const before = process.cpuUsage();
      await engine.step({ sequences });
      pos += length;
      const used = process.cpuUsage(before);
      return (used.user + used.system) / 1000;
    };
    return { name, step, times: [] as number[] };
  });
  for (const m of modes) await m.step(PROMPT);
  for (let s = 0; s < STEPS; s++) for (const m of modes) m.times.push(await m.step(1));
  await engine.close();
  const { hiddenSize: h, intermediateSize: m, numLayers, vocabSize } = config;
  const kvDim = config.numKvHeads * config.headDim;
  const baseWeights = numLayers * (2 * h * h + 2 * h * kvDim + 3 * h * m) + vocabSize * h;
  const distinctRows = adapters.reduce((sum, a) => sum + adapterPageCount(config, a), 0) * pool.pageSize;
  return {
    // Weights a memory-bound decode step reads: the base once; each distinct adapter's rows once.
    extraBytes: distinctRows / baseWeights,
    cases: modes.map(({ name, times }) => {
      const sorted = times.slice(Math.min(2, times.length - 1)).sort((a, b) => a - b);
      return { name, min: sorted[0], median: sorted[Math.floor(sorted.length / 2)] };
    }),
  };
}

async function main(): Promise<void> {
  const rows: Array<Record<string, string | number>> = [];
  const bars: Array<{ label: string; value: number }> = [];
  const bounds: string[] = [];
  for (const [mix, ranks] of Object.entries(MIXES)) {
    progress(`${mix}: ${BATCH} decode sequences, ${STEPS} steps per case`);
    const { extraBytes, cases: measured } = await measureMix(ranks);
    bounds.push(
      `${mix}: ${BATCH} distinct adapters add ${(100 * extraBytes).toFixed(0)} % to the weight bytes of a step, so a step bound by memory traffic would run at most ${(100 / (1 + extraBytes)).toFixed(0)} % of the one-adapter rate (one thread's step here is bound by its multiply-adds more than by memory: the base Gemms of 32 tokens)`,
    );
    const oneAdapter = measured[1].min;
    for (const { name, min, median } of measured) {
      rows.push({
        ranks: mix,
        case: name,
        'min CPU ms/step': min,
        'median CPU ms/step': median,
        'vs one adapter': `${((100 * oneAdapter) / min).toFixed(1)} %`,
      });
      bars.push({ label: `${mix}: ${name}`, value: min });
    }
  }
  const files = writeBenchReport({
    name: `${args.model === 'tinyllama' ? 'onnx-many-adapters-tinyllama' : 'onnx-many-adapters'}${THREADS === 1 ? '' : `-threads${THREADS}`}`,
    title: 'onnx engine: a decode step with many distinct adapters',
    context: {
      ...machineContext(),
      model: `synthetic (hidden ${SPEC.hiddenSize}, ${SPEC.numLayers} layers)`,
      threads: THREADS,
      sequences: BATCH,
      steps: STEPS,
    },
    rows,
    chart: { unit: 'CPU ms per decode step (min)', bars },
    notes: [
      `CPU time of the process per step (user + system), ${THREADS === 1 ? 'one onnxruntime thread' : `${THREADS} onnxruntime threads (CPU time of all of them)`}; the three cases interleaved step by step.`,
      "vs one adapter: the one-adapter step's time over this case's (what n = 1 vs n = 2,000 compares in bench/adapter-scaling.ts, without the scheduler).",
      'Adapters past the stacked slots (kernels/onnx/lora-slot-stack.ts) are gathered as rank-chunked segments (kernels/onnx/lora-segments.ts).',
      ...bounds,
    ],
  });
  progress(`wrote ${files.join(', ')}`);
}

await main();
