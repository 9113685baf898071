import { describe, expect, it } from 'vitest';
import { type SimSetup, type SimWorkload, simulate, summarizeSlo } from '../../bench/scheduler-sim.js';
import { fcfsPolicy, sloraPolicy } from '../../scheduler/scheduling-policy.js';

// The real Scheduler on a ManualClock, an engine whose step costs 8 ms + 0.25 ms per token +
// 1 ms per distinct adapter: thousands of requests per run, in milliseconds.

const SLO_MS = 2000;
const limits = { maxNumSeqs: 16, maxNumBatchedTokens: 512, maxModelLen: 1024, maxWaiting: 100_000 };
const cost = { fixedMs: 8, perTokenMs: 0.25, perAdapterMs: 1 };
const workload: SimWorkload = {
  seed: 1,
  numRequests: 2000,
  rate: 10,
  burstiness: 1,
  numAdapters: 100,
  alpha: 0.3,
  baseShare: 0.1,
  promptLen: [16, 256],
  outputLen: [8, 64],
  cancelShare: 0,
  cancelAfterMs: 1000,
};
const slora = sloraPolicy({ maxLorasPerBatch: 8, maxWaitMs: SLO_MS / 2 });
const fcfs: SimSetup = { policy: fcfsPolicy, limits, sloTtftMs: SLO_MS, cost, numPages: 4096 };
const sloraSetup: SimSetup = { ...fcfs, policy: slora };

/** Requests per second fcfs completes when everything arrives at once. */
function capacity(): number {
  const n = 500;
  const run = simulate({ ...workload, numRequests: n, rate: Number.POSITIVE_INFINITY }, fcfs);
  return n / (run.durationMs / 1000);
}

describe('scheduler simulation', () => {
  for (const [arrivals, burstiness] of [
    ['Poisson', 1],
    ['bursty Gamma (cv 2)', 0.25],
  ] as const) {
    for (const setup of [fcfs, sloraSetup]) {
      it(`${setup.policy.name}, ${arrivals} arrivals with cancellations: every request ends, nothing leaks`, () => {
        const run = simulate(
          { ...workload, burstiness, rate: capacity() * 0.9, cancelShare: 0.1 },
          { ...setup, numPages: 600 },
        );
        expect(run.requests).toHaveLength(workload.numRequests);
        for (const r of run.requests) expect(r.isRefused || r.endMs !== null, r.requestId).toBe(true);
        // Finished requests produced exactly what they asked for; cancelled ones stopped early.
        const finished = run.events.filter((e) => e.type === 'finished');
        expect(finished.length).toBeGreaterThan(workload.numRequests * 0.8);
        expect(run.requests.filter((r) => r.isCancelled).length).toBeGreaterThan(0);
        expect(run.leakedPages).toBe(0);
        expect(run.leakedPins).toBe(0);
      });
    }
  }

  it('gives the same schedule for the same seed and another for another seed', () => {
    const rate = capacity() * 1.5;
    const a = simulate({ ...workload, rate, cancelShare: 0.1 }, sloraSetup);
    const b = simulate({ ...workload, rate, cancelShare: 0.1 }, sloraSetup);
    const c = simulate({ ...workload, seed: 2, rate, cancelShare: 0.1 }, sloraSetup);
    expect(b.events).toEqual(a.events);
    expect(c.events).not.toEqual(a.events);
  });

  it('starves no one under slora: clustering passes a request over for at most about the wait bound', () => {
    const maxWaitMs = 1000;
    const policy = sloraPolicy({ maxLorasPerBatch: 8, maxWaitMs });
    for (const burstiness of [1, 0.25]) {
      const run = simulate(
        { ...workload, burstiness, rate: capacity() * 0.8, cancelShare: 0.1 },
        { ...sloraSetup, policy, sloTtftMs: null },
      );
      const summary = summarizeSlo(run, SLO_MS);
      expect(run.maxAdaptersPerStep).toBeLessThanOrEqual(8);
      // The bound, plus the time for running sequences to make room (a few long outputs).
      expect(summary.maxQueueMs).toBeLessThan(maxWaitMs + 3000);
      expect(summary.numRefused).toBe(0);
    }
  });

  it('runs mixed steps under slora and never under fcfs', () => {
    const rate = capacity() * 0.9;
    expect(simulate({ ...workload, rate }, fcfs).numMixedSteps).toBe(0);
    expect(simulate({ ...workload, rate }, sloraSetup).numMixedSteps).toBeGreaterThan(100);
  });

  it('under 2x overload: slora meets the TTFT objective for >= 0.8 of admitted+aborted requests, fcfs for <= 0.2, and slora has the goodput', () => {
    const rate = capacity() * 2;
    const f = summarizeSlo(simulate({ ...workload, rate }, fcfs), SLO_MS);
    const s = summarizeSlo(simulate({ ...workload, rate }, sloraSetup), SLO_MS);
    expect(f.numRefused + f.numSloAborted).toBe(0);
    expect(f.attainment).toBeLessThanOrEqual(0.2);
    expect(s.attainment).toBeGreaterThanOrEqual(0.8);
    expect(s.goodput).toBeGreaterThanOrEqual(f.goodput);
    // Every arrival counted, refusals at the door included, slora still meets far more objectives.
    expect(s.attainmentOfAll).toBeGreaterThan(2 * f.attainmentOfAll);
  });

  it('without --slo-ttft, slora refuses and aborts nothing', () => {
    const run = simulate(
      { ...workload, rate: capacity() * 2, numRequests: 500 },
      { ...sloraSetup, sloTtftMs: null },
    );
    const summary = summarizeSlo(run, SLO_MS);
    expect(summary.numRefused + summary.numSloAborted).toBe(0);
    expect(run.requests.every((r) => r.endMs !== null)).toBe(true);
  });
});
