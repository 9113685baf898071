import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ClusterOptions, type SimRequest, simulateCluster } from '../../bench/replicas/cluster-sim.js';
import {
  decodeStepMs,
  type StepCosts,
  stepCostsFromOnnxBench,
  stepMs,
} from '../../bench/replicas/step-costs.js';

const FLAT: StepCosts = { decodeMs: [[1, 100]], prefillMsPerToken: 1, adapterLoadMs: 50, source: 'test' };

function options(overrides: Partial<ClusterOptions> = {}): ClusterOptions {
  return {
    numReplicas: 1,
    router: 'round-robin',
    maxBatch: 8,
    maxLoras: 4,
    costs: FLAT,
    seed: 1,
    ...overrides,
  };
}

function req(id: number, adapter: string, arrival: number, promptLen = 10, outputLen = 3): SimRequest {
  return { id, adapter, arrival, promptLen, outputLen };
}

describe('step costs', () => {
  const costs: StepCosts = {
    ...FLAT,
    decodeMs: [
      [1, 100],
      [8, 240],
      [32, 480],
    ],
  };

  it('interpolates decode time between measured batch sizes and extrapolates past them', () => {
    expect(decodeStepMs(costs, 1)).toBe(100);
    expect(decodeStepMs(costs, 4.5)).toBeCloseTo(170, 9);
    expect(decodeStepMs(costs, 20)).toBeCloseTo(360, 9);
    expect(decodeStepMs(costs, 64)).toBeCloseTo(800, 9);
    expect(decodeStepMs(costs, 0)).toBe(0);
    expect(stepMs(costs, 8, 20, 2)).toBe(240 + 20 + 100);
  });

  it('reads the onnx benchmark: decode with adapters per batch size, prefill per token', () => {
    const read = stepCostsFromOnnxBench(
      join(import.meta.dirname, '../../bench/results/onnx-prefill-decode.json'),
      5,
    );
    expect(read.decodeMs.map(([batch]) => batch)).toEqual([1, 8, 32]);
    expect(read.decodeMs.every(([, ms]) => ms > 0)).toBe(true);
    expect(read.prefillMsPerToken).toBeGreaterThan(0);
    expect(read.adapterLoadMs).toBe(5);
  });
});

describe('simulateCluster', () => {
  it('times one request: a prefill step with the adapter copy gives the first token, then decode steps', () => {
    const { outcomes, numLoads } = simulateCluster([req(0, 'a', 2)], options());
    expect(numLoads).toBe(1);
    expect(outcomes[0].firstToken).toBeCloseTo(2 + (100 + 10 + 50) / 1000, 12);
    expect(outcomes[0].finish).toBeCloseTo(2 + (160 + 100 + 100) / 1000, 12);
  });

  it('keeps at most max-loras adapters resident, evicting the least recently used idle one', () => {
    const spaced = [req(0, 'a', 0), req(1, 'b', 10), req(2, 'a', 20), req(3, 'c', 30), req(4, 'b', 40)];
    expect(simulateCluster(spaced, options({ maxLoras: 1 })).numLoads).toBe(5);
    // Two slots: a, b loaded; a hits; c evicts b (a was used later); b is loaded again.
    expect(simulateCluster(spaced, options({ maxLoras: 2 })).numLoads).toBe(4);
    expect(simulateCluster(spaced, options({ maxLoras: 3 })).numLoads).toBe(3);
  });

  it('makes a request wait while every adapter slot is held by a running request', () => {
    const { outcomes } = simulateCluster([req(0, 'a', 0), req(1, 'b', 0)], options({ maxLoras: 1 }));
    const [a, b] = [0, 1].map((id) => outcomes.find((o) => o.id === id)!);
    expect(b.firstToken).toBeGreaterThan(a.finish);
  });

  it('batches requests on one replica: a step serves every running request', () => {
    const { outcomes } = simulateCluster([req(0, 'a', 0), req(1, 'a', 0)], options());
    expect(outcomes.map((o) => o.finish)).toEqual([outcomes[0].finish, outcomes[0].finish]);
  });

  it('routes round-robin in turn, and by residency back to the replica that holds the adapter', () => {
    const sequential = Array.from({ length: 8 }, (_, i) => req(i, 'a', i * 10));
    const roundRobin = simulateCluster(sequential, options({ numReplicas: 4 }));
    expect(roundRobin.outcomes.map((o) => o.replica)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    expect(roundRobin.numLoads).toBe(4);
    const residency = simulateCluster(
      sequential,
      options({ numReplicas: 4, router: 'residency', maxLoras: 1 }),
    );
    expect(new Set(residency.outcomes.map((o) => o.replica)).size).toBe(1);
    expect(residency.numLoads).toBe(1);
  });

  it('completes every request of a busy multi-adapter trace under every router', () => {
    const trace = Array.from({ length: 200 }, (_, i) =>
      req(i, `ad-${i % 13}`, i * 0.05, 5 + (i % 7), 2 + (i % 5)),
    );
    for (const router of ['round-robin', 'gateway', 'residency'] as const) {
      const { outcomes, numLoads } = simulateCluster(trace, options({ numReplicas: 3, router, maxLoras: 2 }));
      expect(outcomes).toHaveLength(200);
      expect(numLoads).toBeGreaterThanOrEqual(13);
      for (const o of outcomes) {
        expect(o.firstToken).toBeGreaterThan(o.arrival);
        expect(o.finish).toBeGreaterThanOrEqual(o.firstToken);
      }
    }
  });
});
