import { describe, expect, it } from 'vitest';
import {
  type BatchLimits,
  kvCapacityView,
  type SchedulableSequence,
  schedule,
  validateBatchLimits,
} from '../../scheduler/batch-policy.js';
import { fakeKv } from './fake-engine.js';

// The fake model's layout: 2 tokens per page, 2 pages (K and V of its one layer) per block,
// so T cached tokens take 2·ceil(T/2) pages.

interface Seq extends SchedulableSequence {
  seqId: number;
  numTokens: number;
  numCachedTokens: number;
}

/** [seqId, numCachedTokens, numTokens] */
type SeqSpec = [number, number, number];

interface Case {
  name: string;
  /** KV pages in the pool (besides the zero page). */
  kvPages: number;
  limits?: Partial<BatchLimits>;
  running?: SeqSpec[];
  /** Waiting prompts: [seqId, numTokens]. */
  waiting?: Array<[number, number]>;
  kind: 'prefill' | 'decode' | 'idle';
  /** [seqId, numTokens, needsLogits] */
  scheduled: Array<[number, number, boolean]>;
  admitted?: number[];
  preempted?: number[];
  cannotFit?: number[];
}

const cases: Case[] = [
  {
    name: 'admits waiting prompts first come, first served within the token budget, chunking the last',
    kvPages: 64,
    limits: { maxNumBatchedTokens: 8 },
    waiting: [
      [1, 3],
      [2, 3],
      [3, 3],
      [4, 3],
    ],
    kind: 'prefill',
    scheduled: [
      [1, 3, true],
      [2, 3, true],
      [3, 2, false],
    ],
    admitted: [1, 2, 3],
  },
  {
    name: 'prefills a prompt longer than the budget in chunks, logits only at the last chunk (1/3)',
    kvPages: 64,
    limits: { maxNumBatchedTokens: 4 },
    waiting: [[1, 10]],
    kind: 'prefill',
    scheduled: [[1, 4, false]],
    admitted: [1],
  },
  {
    name: 'chunked prefill (2/3): the admitted sequence continues',
    kvPages: 64,
    limits: { maxNumBatchedTokens: 4 },
    running: [[1, 4, 10]],
    kind: 'prefill',
    scheduled: [[1, 4, false]],
  },
  {
    name: 'chunked prefill (3/3): the last chunk needs logits',
    kvPages: 64,
    limits: { maxNumBatchedTokens: 4 },
    running: [[1, 8, 10]],
    kind: 'prefill',
    scheduled: [[1, 2, true]],
  },
  {
    name: 'an unfinished prefill goes before new admissions, which share what budget is left',
    kvPages: 64,
    limits: { maxNumBatchedTokens: 8 },
    running: [[1, 4, 10]],
    waiting: [[2, 2]],
    kind: 'prefill',
    scheduled: [
      [1, 6, true],
      [2, 2, true],
    ],
    admitted: [2],
  },
  {
    name: 'maxNumSeqs caps admission',
    kvPages: 64,
    limits: { maxNumSeqs: 2 },
    running: [[1, 3, 4]],
    waiting: [
      [2, 2],
      [3, 2],
    ],
    kind: 'prefill',
    scheduled: [[2, 2, true]],
    admitted: [2],
  },
  {
    name: 'never skips the head of the queue: a head that does not fit blocks those behind it',
    kvPages: 8,
    running: [[1, 3, 4]],
    waiting: [
      [2, 6],
      [3, 2],
    ],
    kind: 'decode',
    scheduled: [[1, 1, true]],
  },
  {
    name: 'admission keeps back the pages running decoders need at their next step',
    kvPages: 8,
    running: [
      [1, 2, 3],
      [2, 2, 3],
    ],
    waiting: [[3, 2]],
    kind: 'decode',
    scheduled: [
      [1, 1, true],
      [2, 1, true],
    ],
  },
  {
    name: 'decode step: one token for every running sequence, across adapters and the base model',
    kvPages: 64,
    running: [
      [1, 3, 4],
      [2, 6, 7],
      [3, 1, 2],
    ],
    kind: 'decode',
    scheduled: [
      [1, 1, true],
      [2, 1, true],
      [3, 1, true],
    ],
  },
  {
    name: 'the pool cannot grow a running sequence: the most recently admitted one is preempted',
    kvPages: 8,
    running: [
      [1, 2, 3],
      [2, 3, 4],
      [3, 1, 2],
    ],
    kind: 'decode',
    scheduled: [
      [1, 1, true],
      [2, 1, true],
    ],
    preempted: [3],
  },
  {
    name: 'a sequence that cannot grow preempts itself when it is the newest',
    kvPages: 4,
    running: [
      [1, 1, 2],
      [2, 2, 3],
    ],
    kind: 'decode',
    scheduled: [[1, 1, true]],
    preempted: [2],
  },
  {
    name: 'a sequence alone that the pool cannot grow can never fit',
    kvPages: 2,
    running: [[1, 2, 3]],
    kind: 'decode',
    scheduled: [],
    cannotFit: [1],
  },
  {
    name: 'a prefill chunk shrinks to what the pool holds',
    kvPages: 6,
    limits: { maxNumBatchedTokens: 8 },
    running: [[1, 2, 10]],
    kind: 'prefill',
    scheduled: [[1, 4, false]],
  },
  {
    name: 'an older prefill that cannot continue makes room by preempting newer sequences',
    kvPages: 6,
    running: [
      [1, 2, 10],
      [2, 3, 4],
    ],
    kind: 'decode',
    scheduled: [],
    preempted: [2],
  },
  {
    name: 'nothing to do',
    kvPages: 4,
    kind: 'idle',
    scheduled: [],
  },
];

const baseLimits: BatchLimits = { maxNumSeqs: 8, maxNumBatchedTokens: 16, maxModelLen: 64 };

describe('batch policy', () => {
  for (const c of cases) {
    it(c.name, () => {
      const { kvCache } = fakeKv(c.kvPages + 1);
      const running: Seq[] = (c.running ?? []).map(([seqId, numCachedTokens, numTokens]) => {
        expect(kvCache.reserve(seqId, numCachedTokens)).toBe(true);
        return { seqId, numCachedTokens, numTokens };
      });
      const waiting: Seq[] = (c.waiting ?? []).map(([seqId, numTokens]) => ({
        seqId,
        numTokens,
        numCachedTokens: 0,
      }));
      const freeBefore = kvCache.pool.numFree;
      const decision = schedule(waiting, running, kvCapacityView(kvCache), { ...baseLimits, ...c.limits });
      expect(decision.kind).toBe(c.kind);
      expect(decision.scheduled.map((s) => [s.seq.seqId, s.numTokens, s.needsLogits])).toEqual(c.scheduled);
      expect(decision.admitted.map((s) => s.seqId)).toEqual(c.admitted ?? []);
      expect(decision.preempted.map((s) => s.seqId)).toEqual(c.preempted ?? []);
      expect(decision.cannotFit.map((s) => s.seqId)).toEqual(c.cannotFit ?? []);
      expect(kvCache.pool.numFree).toBe(freeBefore);
    });
  }

  it('rejects a sequence beyond maxModelLen and limits that cannot run a decode step', () => {
    const { kvCache } = fakeKv(16);
    const long: Seq = { seqId: 1, numTokens: 65, numCachedTokens: 0 };
    expect(() => schedule([long], [], kvCapacityView(kvCache), baseLimits)).toThrow(/maxModelLen/);
    expect(() => validateBatchLimits({ maxNumSeqs: 8, maxNumBatchedTokens: 4, maxModelLen: 64 })).toThrow(
      /at least maxNumSeqs/,
    );
    expect(() => validateBatchLimits({ maxNumSeqs: 0, maxNumBatchedTokens: 4, maxModelLen: 64 })).toThrow(
      /positive integer/,
    );
  });
});
