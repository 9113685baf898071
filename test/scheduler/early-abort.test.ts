import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../scheduler/clock.js';
import { EarlyAbort } from '../../scheduler/early-abort.js';
import { AdmissionError, type GenerationDelta, type GenerationStream } from '../../scheduler/request.js';
import { type PlannedStep, Scheduler } from '../../scheduler/scheduler.js';
import type { SchedulerEvent } from '../../scheduler/scheduler-events.js';
import { fcfsPolicy, type SchedulingPolicy, sloraPolicy } from '../../scheduler/scheduling-policy.js';
import type { Sequence } from '../../scheduler/sequence.js';
import { TtftEstimator } from '../../scheduler/ttft-estimator.js';
import { fakeKv, tableDecoder } from './fake-engine.js';
import { FAKE_EOS, fakeSampling } from './fake-scheduler.js';
import { ResidentAdapters } from './resident-adapters.js';

const STEP_MS = 10;
const SLO_MS = 100;

function setup(policy: SchedulingPolicy, sloMs = SLO_MS) {
  const clock = new ManualClock();
  const { kvCache, pool } = fakeKv(200);
  const events: SchedulerEvent[] = [];
  const scheduler = new Scheduler({
    kvCache,
    adapters: new ResidentAdapters(),
    newDecoder: tableDecoder(),
    eosTokenIds: [FAKE_EOS],
    limits: { maxNumSeqs: 1, maxNumBatchedTokens: 16, maxModelLen: 64, maxWaiting: 16 },
    policy,
    clock,
    events: (e) => events.push(e),
    sloTtftMs: sloMs,
  });
  /** Runs one step of STEP_MS, every row sampling token 1. */
  const step = (): PlannedStep | null => {
    const outcome = scheduler.schedule();
    if (typeof outcome === 'string') return null;
    clock.advance(STEP_MS);
    scheduler.postprocess(outcome, new Int32Array(outcome.rows.length).fill(1));
    return outcome;
  };
  const submit = (id: string, maxTokens: number, promptLength = 3) =>
    scheduler.submit({
      requestId: id,
      promptTokens: Array.from({ length: promptLength }, (_, i) => 1 + (i % 20)),
      adapter: null,
      sampling: fakeSampling({ maxTokens, ignoreEos: true }),
    });
  return { clock, scheduler, events, step, submit, pool };
}

async function drain(stream: GenerationStream): Promise<GenerationDelta[] | Error> {
  const deltas: GenerationDelta[] = [];
  try {
    for await (const d of stream) deltas.push(d);
  } catch (error) {
    return error as Error;
  }
  return deltas;
}

describe('early abort (--slo-ttft)', () => {
  it('aborts a queued request whose first token can no longer come in time, before any token, under slora', async () => {
    const { scheduler, events, step, submit, pool } = setup(
      sloraPolicy({ maxLorasPerBatch: 1, maxWaitMs: 50 }),
    );
    const long = submit('long', 30);
    for (let i = 0; i < 3; i++) step();
    // One batch slot, held for ~27 more steps (270 ms): 'late' cannot get its first token within 100 ms.
    const late = submit('late', 2);
    while (step());
    const result = await drain(late);
    expect(result).toBeInstanceOf(AdmissionError);
    expect((result as AdmissionError).reason).toBe('slo_unattainable');
    expect((result as AdmissionError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(events.filter((e) => e.requestId === 'late').map((e) => e.type)).toEqual(['queued', 'aborted']);
    expect(events.find((e) => e.requestId === 'late' && e.type === 'aborted')).toMatchObject({
      reason: 'slo',
    });
    // The aborted request cost no step, and it was aborted as soon as its objective was out of reach.
    const abortedAt = events.find((e) => e.type === 'aborted')!.time;
    const queuedAt = events.find((e) => e.requestId === 'late' && e.type === 'queued')!.time;
    expect(abortedAt - queuedAt).toBeLessThanOrEqual(SLO_MS + STEP_MS);
    expect(scheduler.stats().numSloAborts).toBe(1);
    const finished = await drain(long);
    expect(Array.isArray(finished) && finished.flatMap((d) => d.tokenIds)).toHaveLength(30);
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('refuses at submit once the measured finish rate says the batch slot frees too late', async () => {
    const { step, submit, scheduler } = setup(sloraPolicy({ maxLorasPerBatch: 1, maxWaitMs: 50 }));
    const short = submit('short', 5);
    while (step());
    await drain(short);
    const long = submit('long', 40);
    for (let i = 0; i < 3; i++) step();
    // One slot, and sequences have been seen to finish one per ~60 ms of steps: past half the objective.
    let refusal: unknown = null;
    try {
      submit('too-late', 2);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(AdmissionError);
    expect((refusal as AdmissionError).reason).toBe('slo_unattainable');
    expect((refusal as Error).message).toMatch(/--slo-ttft/);
    expect(scheduler.stats().numRequests).toBe(1);
    while (step());
    await drain(long);
  });

  it('serves a prompt too long to meet the objective even alone, when nothing is ahead of it', async () => {
    // 20 ms objective; a 60-token prompt takes 4 steps of 10 ms at a 16-token budget.
    const { step, submit, events } = setup(sloraPolicy({ maxLorasPerBatch: 1, maxWaitMs: 10 }), 20);
    const warm = submit('warm', 2);
    while (step());
    await drain(warm);
    const long = submit('long', 2, 60);
    while (step());
    const deltas = await drain(long);
    expect(Array.isArray(deltas) && deltas.flatMap((d) => d.tokenIds)).toHaveLength(2);
    expect(events.filter((e) => e.type === 'aborted')).toEqual([]);
  });

  it('never aborts under fcfs: the baseline only queues', async () => {
    const { scheduler, step, submit } = setup(fcfsPolicy);
    const long = submit('long', 30);
    for (let i = 0; i < 3; i++) step();
    const late = submit('late', 2);
    while (step());
    const deltas = await drain(late);
    expect(Array.isArray(deltas) && deltas.flatMap((d) => d.tokenIds)).toHaveLength(2);
    expect(scheduler.stats().numSloAborts).toBe(0);
    await drain(long);
  });
});

describe('early abort under a step budget (--max-step-time)', () => {
  it('estimates with the steps the budget allows: a prefill cut into more steps pays each one its fixed time', () => {
    // Steps measured at 50 ms + 1 ms a token.
    const estimator = new TtftEstimator();
    for (const [tokens, ms] of [
      [100, 150],
      [200, 250],
      [400, 450],
    ])
      estimator.observe(tokens, ms, 0);
    const limits = { maxNumSeqs: 16, maxNumBatchedTokens: 4096, maxModelLen: 8192 };
    const waiting = Array.from({ length: 4 }, () => ({ numTokens: 500, numCachedTokens: 0 }) as Sequence);
    // 2,100 prompt tokens in one step: ~2.15 s, under 0.4 of a 6 s objective; in 21 steps of 100: ~3.15 s.
    expect(new EarlyAbort(6000, limits, estimator).refusal(100, 1, waiting, 0)).toBeNull();
    const budgeted = new EarlyAbort(6000, limits, estimator, () => 100).refusal(100, 1, waiting, 0);
    expect(budgeted?.reason).toBe('slo_unattainable');
  });
});
