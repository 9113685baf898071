import { describe, expect, it } from 'vitest';
import type { GenerationDelta, GenerationRequest } from '../../scheduler/request.js';
import type { SchedulerLimits } from '../../scheduler/scheduler.js';
import { contextSum, contextSumTokens, FakeEngine, fakeAdapter, fakeKv } from './fake-engine.js';
import { fakeScheduler, fakeRequest as request } from './fake-scheduler.js';
import { ResidentAdapters } from './resident-adapters.js';

// The fake model: 2 tokens per block. contextSum depends on every token before, so a block read
// from the wrong pages (another prompt's, a reclaimed one) changes the text.
const maxModelLen = 64;

function setup(
  options: { kvPages?: number; prefixCaching?: boolean; limits?: Partial<SchedulerLimits> } = {},
) {
  const { pool, kvCache } = fakeKv((options.kvPages ?? 128) + 1, {
    prefixCaching: options.prefixCaching ?? true,
  });
  const engine = new FakeEngine(pool, contextSum);
  const adapters = new ResidentAdapters(
    new Map([
      ['ad1', fakeAdapter('ad1')],
      ['ad2', fakeAdapter('ad2')],
    ]),
  );
  const scheduler = fakeScheduler(engine, kvCache, {
    adapters,
    limits: { maxModelLen, maxNumBatchedTokens: 64, maxWaiting: 64, ...options.limits },
  });
  return { pool, kvCache, engine, scheduler, adapters };
}

async function run(scheduler: ReturnType<typeof setup>['scheduler'], req: GenerationRequest) {
  const stream = scheduler.submit(req);
  const deltas: GenerationDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return { tokens: deltas.flatMap((d) => d.tokenIds), cached: stream.cachedPromptTokens };
}

/** Where each step of the engine started the sequence of `seqId` (its first chunk's startPos is the hit). */
function firstStart(engine: FakeEngine, seqId: number): number {
  for (const step of engine.steps) for (const s of step) if (s.seqId === seqId) return s.startPos;
  throw new Error(`seq ${seqId} never ran`);
}

const prompt = [5, 1, 4, 1, 5, 9, 2, 6, 5]; // 9 tokens: 4 full blocks before the last token

describe('prefix caching', () => {
  it('runs a repeated prompt from its cached blocks, leaving the last token to compute, with the same text', async () => {
    const { scheduler, engine, pool, kvCache } = setup();
    const first = await run(scheduler, request('a', prompt, { maxTokens: 5 }));
    expect(first.tokens).toEqual(contextSumTokens(prompt, 5, maxModelLen));
    expect(first.cached).toBe(0);
    const second = await run(scheduler, request('b', prompt, { maxTokens: 5 }));
    expect(second.tokens).toEqual(first.tokens);
    expect(second.cached).toBe(8);
    expect(firstStart(engine, 2)).toBe(8);
    // The whole prompt and the first generated tokens were cached: a prompt ending on a block
    // boundary still computes its last block (its last token needs logits).
    const aligned = [...prompt, ...first.tokens.slice(0, 3)]; // 12 tokens, 6 blocks
    const third = await run(scheduler, request('c', aligned, { maxTokens: 2 }));
    expect(third.cached).toBe(10);
    expect(third.tokens).toEqual(contextSumTokens(aligned, 2, maxModelLen));
    const stats = scheduler.stats();
    expect(stats.numPrefixQueryTokens).toBe(9 + 9 + 12);
    expect(stats.numPrefixHitTokens).toBe(18);
    // Nothing leaks: every 'kv' page left is an idle cached block, and dropping them empties the pool.
    expect(pool.numUsed('kv')).toBe(kvCache.numIdleCachedPages);
    expect(kvCache.numSequences).toBe(0);
    kvCache.prefixCache!.clearIdle();
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('shares a common prefix between running sequences (one copy of its pages) and computes only the tails', async () => {
    const { scheduler, engine, pool } = setup();
    const system = [7, 3, 7, 3, 7, 3]; // 3 blocks
    await run(scheduler, request('warm', [...system, 1], { maxTokens: 1 }));
    const tails = [[1, 2, 3], [4, 5], [6]];
    let maxKv = 0;
    engine.onStep = () => {
      maxKv = Math.max(maxKv, pool.numUsed('kv'));
    };
    const results = await Promise.all(
      tails.map((tail, i) => run(scheduler, request(`t${i}`, [...system, ...tail], { maxTokens: 4 }))),
    );
    results.forEach((r, i) => {
      expect(r.cached).toBe(6);
      expect(r.tokens).toEqual(contextSumTokens([...system, ...tails[i]], 4, maxModelLen));
    });
    for (const seqId of [2, 3, 4]) expect(firstStart(engine, seqId)).toBe(6);
    // Three sequences of 10, 9 and 8 tokens at most: 5 + 5 + 4 blocks each alone, the shared 3 once.
    expect(maxKv).toBeLessThanOrEqual((3 + 2 + 2 + 1 + 4) * 2);
  });

  it('never shares across adapters, adapter weights, or cache salts', async () => {
    const { scheduler, engine, adapters } = setup();
    await run(scheduler, request('base', prompt));
    const adapted = await run(scheduler, request('ad1', prompt, {}, { adapter: 'ad1' }));
    expect(adapted.cached).toBe(0);
    expect((await run(scheduler, request('ad2', prompt, {}, { adapter: 'ad2' }))).cached).toBe(0);
    expect((await run(scheduler, request('ad1-again', prompt, {}, { adapter: 'ad1' }))).cached).toBe(8);
    // An in-place update gives the adapter new weights: nothing computed with the old ones is reused.
    adapters.weights.set('ad1', 2);
    expect((await run(scheduler, request('ad1-new', prompt, {}, { adapter: 'ad1' }))).cached).toBe(0);
    expect((await run(scheduler, request('salted', prompt, {}, { cacheSalt: 'tenant-a' }))).cached).toBe(0);
    expect((await run(scheduler, request('salted-b', prompt, {}, { cacheSalt: 'tenant-b' }))).cached).toBe(0);
    expect((await run(scheduler, request('salted-a', prompt, {}, { cacheSalt: 'tenant-a' }))).cached).toBe(8);
    expect((await run(scheduler, request('unsalted', prompt))).cached).toBe(8);
    expect(engine.steps.length).toBeGreaterThan(0);
  });

  it('does not cache blocks of a sequence whose adapter weights changed while it ran', async () => {
    const { scheduler, engine, adapters } = setup();
    // A one-token prompt fills no block at its first step; the weights change before the next, so
    // every full block of it holds K/V of both weights and must not be cached under either.
    engine.onStep = (step) => {
      if (step === 1) adapters.weights.set('ad1', 2);
    };
    const spanned = await run(scheduler, request('spans', [5], { maxTokens: 6 }, { adapter: 'ad1' }));
    engine.onStep = null;
    const context = [5, ...spanned.tokens];
    expect((await run(scheduler, request('next', context, {}, { adapter: 'ad1' }))).cached).toBe(0);
    // A sequence admitted after the change caches as usual.
    expect((await run(scheduler, request('again', context, {}, { adapter: 'ad1' }))).cached).toBe(6);
  });

  it('computes the whole prompt of a request that scores it (prompt_logprobs), and caches it for others', async () => {
    const { scheduler, engine } = setup();
    await run(scheduler, request('plain', prompt));
    const scored = await run(scheduler, request('scored', prompt, { promptLogprobs: 1 }));
    expect(scored.cached).toBe(0);
    expect(firstStart(engine, 2)).toBe(0);
    const other = [...prompt.slice(0, 8), 3, 3];
    expect((await run(scheduler, request('after', other))).cached).toBe(8);
  });

  it('two identical prompts admitted together both compute; one copy is cached, nothing is freed twice', async () => {
    const { scheduler, pool, kvCache } = setup();
    const [a, b] = await Promise.all([
      run(scheduler, request('a', prompt, { maxTokens: 3 })),
      run(scheduler, request('b', prompt, { maxTokens: 3 })),
    ]);
    expect([a.cached, b.cached]).toEqual([0, 0]);
    expect(a.tokens).toEqual(b.tokens);
    // The prompt plus two generated tokens: 11 tokens of K/V, 5 full blocks, cached once.
    expect(kvCache.prefixCache!.numBlocks).toBe(5);
    expect(pool.numUsed('kv')).toBe(kvCache.numIdleCachedPages);
    expect((await run(scheduler, request('c', prompt))).cached).toBe(8);
  });

  it('reclaims idle cached blocks when the pool needs pages, least recently used and tail first', async () => {
    // 20 blocks in all; each request of 9 prompt + 4 generated tokens holds 7 of them.
    const { scheduler, pool, kvCache } = setup({ kvPages: 40 });
    const prompts = [0, 1, 2, 3, 4].map((k) => prompt.map((t) => (t + k) % 26));
    for (const [i, p] of prompts.entries()) {
      const result = await run(scheduler, request(`r${i}`, p, { maxTokens: 4 }));
      expect(result.tokens).toEqual(contextSumTokens(p, 4, maxModelLen));
    }
    expect(kvCache.prefixCache!.counters.numEvictedBlocks).toBeGreaterThan(0);
    // The newest prompt is still whole; the oldest's blocks went first.
    expect((await run(scheduler, request('again-new', prompts[4]))).cached).toBe(8);
    expect((await run(scheduler, request('again-old', prompts[0]))).cached).toBe(0);
    expect(pool.numUsed('kv')).toBe(kvCache.numIdleCachedPages);
  });

  it("computes an n-choice request's prompt once: the other choices start from the first one's blocks a step later", async () => {
    const { scheduler, engine } = setup();
    const stream = scheduler.submit(request('n3', prompt, { maxTokens: 4, n: 3 }));
    const deltas: GenerationDelta[] = [];
    for await (const d of stream) deltas.push(d);
    const expected = contextSumTokens(prompt, 4, maxModelLen);
    for (const index of [0, 1, 2])
      expect(deltas.filter((d) => d.index === index).flatMap((d) => d.tokenIds)).toEqual(expected);
    expect(engine.steps[0].map((s) => [s.seqId, s.startPos, s.tokens.length])).toEqual([[1, 0, 9]]);
    expect(firstStart(engine, 2)).toBe(8);
    expect(firstStart(engine, 3)).toBe(8);
    const computed = engine.steps.flat().reduce((sum, s) => sum + s.tokens.length, 0);
    expect(computed).toBe(9 + 2 * 1 + 3 * 3); // one prompt, two last tokens, three choices' decodes
  });

  it('with prefix caching off, computes every prompt in full and keeps nothing', async () => {
    const { scheduler, engine, pool } = setup({ prefixCaching: false });
    await run(scheduler, request('a', prompt));
    expect((await run(scheduler, request('b', prompt))).cached).toBe(0);
    expect(firstStart(engine, 2)).toBe(0);
    expect(pool.numUsed('kv')).toBe(0);
    expect(scheduler.stats().numPrefixQueryTokens).toBe(0);
    // Without it, an n-choice request's choices run together from the start.
    const before = engine.steps.length;
    await run(scheduler, request('n2', prompt, { n: 2 }));
    expect(engine.steps[before].map((s) => s.startPos)).toEqual([0, 0]);
  });
});
