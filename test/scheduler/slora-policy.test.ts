import { describe, expect, it } from 'vitest';
import { type BatchLimits, kvCapacityView, type SchedulableSequence } from '../../scheduler/batch-policy.js';
import { sloraPolicy } from '../../scheduler/scheduling-policy.js';
import { fakeKv } from './fake-engine.js';

// The fake model's layout: 2 tokens per page, 2 pages per block, so T cached tokens take 2·ceil(T/2) pages.

interface Seq extends SchedulableSequence {
  seqId: number;
  numTokens: number;
  numCachedTokens: number;
  adapter: string | null;
  /** ms since its request arrived */
  waited: number;
}

const limits: BatchLimits = { maxNumSeqs: 8, maxNumBatchedTokens: 16, maxModelLen: 64 };

function setup(kvPages: number, running: Array<[number, number, number, string | null]>) {
  const { kvCache } = fakeKv(kvPages + 1);
  const seqs: Seq[] = running.map(([seqId, cached, numTokens, adapter]) => {
    expect(kvCache.reserve(seqId, cached)).toBe(true);
    return { seqId, numCachedTokens: cached, numTokens, adapter, waited: 0 };
  });
  return { kv: kvCapacityView(kvCache), running: seqs, pool: kvCache.pool };
}

function waiting(specs: Array<[number, number, string | null, number?]>): Seq[] {
  return specs.map(([seqId, numTokens, adapter, waited]) => ({
    seqId,
    numTokens,
    numCachedTokens: 0,
    adapter,
    waited: waited ?? 0,
  }));
}

function run(
  policyOptions: { maxLorasPerBatch: number; maxWaitMs: number },
  kv: ReturnType<typeof setup>['kv'],
  running: Seq[],
  queue: Seq[],
  overrides: Partial<BatchLimits> = {},
  isReady: (seq: Seq) => boolean = () => true,
) {
  const decision = sloraPolicy(policyOptions).schedule({
    waiting: queue,
    running,
    kv,
    limits: { ...limits, ...overrides },
    isReady,
    waitedMs: (seq) => seq.waited,
  });
  return {
    kind: decision.kind,
    scheduled: decision.scheduled.map((c) => [c.seq.seqId, c.numTokens, c.needsLogits]),
    admitted: decision.admitted.map((s) => s.seqId),
    preempted: decision.preempted.map((s) => s.seqId),
  };
}

const wide = { maxLorasPerBatch: 8, maxWaitMs: 1000 };

describe('slora policy', () => {
  it('runs decodes first, one token each, then prefill chunks in the rest of the budget', () => {
    const { kv, running } = setup(64, [
      [1, 4, 5, null],
      [2, 6, 7, 'a'],
    ]);
    const decision = run(wide, kv, running, waiting([[3, 20, null]]));
    expect(decision.kind).toBe('mixed');
    // 16 tokens: 2 decodes, then 14 of the 20-token prompt (no logits until its last chunk).
    expect(decision.scheduled).toEqual([
      [1, 1, true],
      [2, 1, true],
      [3, 14, false],
    ]);
    expect(decision.admitted).toEqual([3]);
  });

  it('continues an admitted prompt before admitting new ones', () => {
    const { kv, running } = setup(64, [
      [1, 4, 5, null],
      [2, 14, 20, null],
    ]);
    const decision = run(wide, kv, running, waiting([[3, 20, null]]));
    expect(decision.scheduled).toEqual([
      [1, 1, true],
      [2, 6, true],
      [3, 9, false],
    ]);
  });

  it('groups by adapter: requests of adapters already in the step go first, then arrival order', () => {
    const { kv, running } = setup(64, [[1, 4, 5, 'a']]);
    const queue = waiting([
      [2, 2, 'b'],
      [3, 2, 'c'],
      [4, 2, 'a'],
      [5, 2, null],
    ]);
    const decision = run({ maxLorasPerBatch: 2, maxWaitMs: 1000 }, kv, running, queue);
    // a is in the step (4), the base model costs no adapter (5), then b fills the second slot; c waits.
    expect(decision.admitted).toEqual([4, 5, 2]);
  });

  it('bounds the distinct adapters of one step by maxLorasPerBatch', () => {
    const { kv, running } = setup(64, []);
    const queue = waiting([
      [1, 1, 'a'],
      [2, 1, 'b'],
      [3, 1, 'c'],
      [4, 1, 'a'],
      [5, 1, 'd'],
    ]);
    expect(run({ maxLorasPerBatch: 2, maxWaitMs: 1000 }, kv, running, queue).admitted).toEqual([1, 2, 4]);
  });

  it('lets a request that waited past the bound go first, and blocks the rest while its adapter cannot join', () => {
    const { kv, running } = setup(64, [[1, 4, 5, 'a']]);
    const starved = waiting([
      [2, 2, 'a'],
      [3, 2, 'b', 1500],
      [4, 2, 'a'],
    ]);
    // With one adapter per step, b cannot join while a runs: nothing else is admitted, a drains.
    const blocked = run({ maxLorasPerBatch: 1, maxWaitMs: 1000 }, kv, running, starved);
    expect(blocked.admitted).toEqual([]);
    expect(blocked.scheduled).toEqual([[1, 1, true]]);
    // Once a's sequence is gone, b goes first even though a's requests are ahead of it.
    const { kv: emptyKv } = setup(64, []);
    expect(run({ maxLorasPerBatch: 1, maxWaitMs: 1000 }, emptyKv, [], starved).admitted).toEqual([3]);
    // Without the wait, b would be passed over for a's requests.
    const patient = waiting([
      [2, 2, 'a'],
      [3, 2, 'b'],
      [4, 2, 'a'],
    ]);
    expect(run({ maxLorasPerBatch: 1, maxWaitMs: 1000 }, kv, running, patient).admitted).toEqual([2, 4]);
  });

  it('passes over a request whose adapter is not resident, and one that does not fit the pool', () => {
    const { kv, running } = setup(8, []);
    const queue = waiting([
      [1, 2, 'cold'],
      [2, 12, null],
      [3, 2, null],
    ]);
    const decision = run(wide, kv, running, queue, {}, (seq) => seq.adapter !== 'cold');
    expect(decision.admitted).toEqual([3]);
  });

  it('admits nothing in a step that preempts', () => {
    const { kv, running, pool } = setup(4, [
      [1, 2, 3, null],
      [2, 2, 3, null],
    ]);
    expect(pool.numFree).toBe(0);
    const decision = run(wide, kv, running, waiting([[3, 1, null]]));
    expect(decision.preempted).toEqual([2]);
    expect(decision.admitted).toEqual([]);
    expect(decision.scheduled).toEqual([[1, 1, true]]);
  });

  it('refuses bad options', () => {
    expect(() => sloraPolicy({ maxLorasPerBatch: 0, maxWaitMs: 1 })).toThrow(/maxLorasPerBatch/);
    expect(() => sloraPolicy({ maxLorasPerBatch: 1, maxWaitMs: 0 })).toThrow(/maxWaitMs/);
  });
});
