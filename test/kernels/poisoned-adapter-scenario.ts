import type { Engine, SequenceStep } from '../../kernels/engine.js';
import { type AdapterLayout, adapterPageCount, layoutAdapter } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import type { LoraAdapter } from '../../model/lora-adapter.js';
import type { ModelWeights } from '../../model/model-weights.js';
import { storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter } from '../../model/synthetic.js';

/**
 * One tenant's adapter holds non-finite (or f32-overflowing) weights; it runs next to healthy
 * tenants, then its KV and adapter pages are freed and handed to the healthy tenants' next
 * requests. Nothing it left in those pages may reach their results: the engine-level form of
 * "one bad adapter corrupts every tenant" (issue 11).
 */
export interface PoisonOutcome {
  /** Healthy tenants' logits on a fresh engine. */
  before: Float32Array;
  /** The same requests batched beside the poisoned one. */
  beside: Float32Array;
  /** The same requests after the poisoned sequence and adapter were freed. */
  after: Float32Array;
  /** The poisoned request's own logits (garbage is expected there, not asserted). */
  poisoned: Float32Array;
  /** Pages that held poison and were reused by the healthy requests afterwards. */
  reusedPoisonPages: number;
}

/** Weight value the poisoned adapter holds everywhere. */
export type Poison = number;

const HEALTHY_PROMPTS = [
  [11, 42, 7, 99, 3],
  [5, 17, 64],
  [8, 1, 30, 30, 2, 71, 4],
];
const DECODE_TOKENS = [13, 77, 21];
const POISONED_PROMPT_LENGTH = 13;

/**
 * Where the poisoned adapter's pages lie: 'consecutive' (as a fresh pool hands them out; the onnx
 * engine reads it in place through an adapter slot) or 'scattered' (the onnx engine gathers its
 * rows into the same Gemm as the other adapters' rows).
 */
export type PoisonPlacement = 'consecutive' | 'scattered';

export async function runPoisonScenario(
  weights: ModelWeights,
  poison: Poison,
  placement: PoisonPlacement,
  createEngine: (pool: PagePool) => Promise<Engine>,
): Promise<PoisonOutcome> {
  const config = weights.config;
  // LIFO free list: pages freed last are handed out first, so the healthy requests after the
  // poisoned one run on its pages.
  const pool = new PagePool(1000, config.hiddenSize);
  const engine = await createEngine(pool);
  const kv = new KvCache(pool, kvLayout(config));
  const load = (adapter: LoraAdapter, order = (pages: Int32Array) => pages): AdapterLayout => {
    const layout = layoutAdapter(
      config,
      adapter,
      order(pool.allocate(adapterPageCount(config, adapter), 'adapter')),
    );
    engine.writeAdapter(layout, storeAdapter(adapter));
    return layout;
  };
  const healthy = load(
    syntheticAdapter(config, {
      name: 'healthy',
      rank: 4,
      alpha: 8,
      targetModules: [...TARGET_MODULES],
      seed: 3,
    }),
  );
  const toxic = syntheticAdapter(config, {
    name: 'poisoned',
    rank: 8,
    alpha: 16,
    targetModules: [...TARGET_MODULES],
    seed: 4,
  });
  for (const layer of toxic.layers)
    for (const pair of Object.values(layer)) {
      pair.a.fill(poison);
      pair.b.fill(poison);
    }
  const toxicLayout = load(toxic, (pages) => (placement === 'scattered' ? pages.reverse() : pages));
  const owners = [null, healthy, healthy];

  let nextSeq = 1;
  const step = (
    seqId: number,
    tokens: number[],
    startPos: number,
    adapter: AdapterLayout | null,
  ): SequenceStep => {
    if (!kv.reserve(seqId, startPos + tokens.length)) throw new Error('test pool too small');
    return { seqId, tokens, startPos, pageTable: kv.pageTable(seqId), adapter, logits: 'last' };
  };
  /** Healthy prefill + fixed decode tokens, with `extra` (the poisoned sequence's steps) in the same batches. */
  const runHealthy = async (
    extra?: (i: number) => SequenceStep,
  ): Promise<{ logits: Float32Array; pages: Set<number> }> => {
    const ids = HEALTHY_PROMPTS.map(() => nextSeq++);
    const out: number[] = [];
    const pages = new Set<number>();
    const vocab = config.vocabSize;
    for (let i = 0; i <= DECODE_TOKENS.length; i++) {
      const seqs = HEALTHY_PROMPTS.map((prompt, b) =>
        i === 0
          ? step(ids[b], prompt, 0, owners[b])
          : step(ids[b], [DECODE_TOKENS[i - 1]], prompt.length + i - 1, owners[b]),
      );
      // The extra sequence goes second, between healthy tenants; its row is not kept.
      const sequences = extra ? [seqs[0], extra(i), ...seqs.slice(1)] : seqs;
      const logits = await engine.step({ sequences });
      for (let r = 0; r < sequences.length; r++)
        if (!extra || r !== 1) out.push(...logits.subarray(r * vocab, (r + 1) * vocab));
    }
    for (const id of ids) {
      for (const p of kv.pageTable(id)) pages.add(p);
      kv.free(id);
    }
    return { logits: Float32Array.from(out), pages };
  };

  try {
    const before = await runHealthy();
    const poisonedSeq = nextSeq++;
    const poisonedPrompt = Array.from(
      { length: POISONED_PROMPT_LENGTH },
      (_, i) => (i * 37 + 5) % config.vocabSize,
    );
    const poisonedStep = (i: number): SequenceStep =>
      i === 0
        ? step(poisonedSeq, poisonedPrompt, 0, toxicLayout)
        : step(poisonedSeq, [DECODE_TOKENS[i - 1]], POISONED_PROMPT_LENGTH + i - 1, toxicLayout);
    const beside = await runHealthy(poisonedStep);
    // One more poisoned step alone so its logits are kept, then its KV and adapter pages go back.
    const poisoned = await engine.step({
      sequences: [
        step(poisonedSeq, [DECODE_TOKENS[0]], POISONED_PROMPT_LENGTH + DECODE_TOKENS.length, toxicLayout),
      ],
    });
    const poisonPages = new Set<number>([...kv.pageTable(poisonedSeq), ...toxicLayout.allPages]);
    kv.free(poisonedSeq);
    pool.free(toxicLayout.allPages);
    const after = await runHealthy();
    let reusedPoisonPages = 0;
    for (const p of after.pages) if (poisonPages.has(p)) reusedPoisonPages++;
    return {
      before: before.logits,
      beside: beside.logits,
      after: after.logits,
      poisoned,
      reusedPoisonPages,
    };
  } finally {
    await engine.close();
  }
}

/** max |a − b|, or Infinity where either holds a non-finite value or the lengths differ. */
export function healthyDrift(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!Number.isFinite(actual[i]) || !Number.isFinite(expected[i])) return Number.POSITIVE_INFINITY;
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  return worst;
}

/** [label, placement, weight value]: NaN, and a finite value whose products overflow f32. */
export const POISON_CASES: ReadonlyArray<readonly [string, PoisonPlacement, number]> = [
  ['NaN', 'consecutive', Number.NaN],
  ['3e38', 'consecutive', 3e38],
  ['NaN', 'scattered', Number.NaN],
  ['3e38', 'scattered', 3e38],
];
