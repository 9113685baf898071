import { describe, expect, it } from 'vitest';
import type { RowSampling, SampledStep, StepPlan } from '../../kernels/engine.js';
import { sampleOnHost } from '../../kernels/host-sampling.js';
import type { EngineLoop } from '../../scheduler/engine-loop.js';
import type { GenerationDelta, GenerationRequest, GenerationStream } from '../../scheduler/request.js';
import { GenerationError } from '../../scheduler/scheduler.js';
import { FakeEngine, fakeKv, type NextToken } from './fake-engine.js';
import { fakeSampling, fakeScheduler } from './fake-scheduler.js';

/** A FakeEngine that also samples "on the device": the host sampler over its own logits, rows recorded. */
class SamplingFakeEngine extends FakeEngine {
  readonly sampled: RowSampling[][] = [];
  failSampling: Error | null = null;

  async sampleStep(plan: StepPlan, sampling: ReadonlyArray<RowSampling>): Promise<SampledStep> {
    this.sampled.push([...sampling]);
    if (this.failSampling) throw this.failSampling;
    return sampleOnHost(this, plan, sampling);
  }
}

/** Uneven logits that depend on the context, so seeded draws spread over many tokens. */
const uneven: NextToken = (_seq, context) => {
  const row = new Float32Array(32);
  const salt = context.reduce((a, b) => a + b, 0);
  for (let i = 0; i < row.length; i++) row[i] = Math.sin(i * 1.7 + salt) * 2;
  return row;
};

function setup(engineKind: 'host' | 'device', sampleOnEngine?: boolean) {
  const { pool, kvCache } = fakeKv(257);
  const engine =
    engineKind === 'device' ? new SamplingFakeEngine(pool, uneven) : new FakeEngine(pool, uneven);
  const scheduler = fakeScheduler(engine, kvCache, { sampleOnEngine });
  return { engine, scheduler };
}

function request(requestId: string, promptTokens: number[], seed: number, n = 1): GenerationRequest {
  return {
    requestId,
    promptTokens,
    adapter: null,
    sampling: fakeSampling({
      maxTokens: 10,
      temperature: 0.9,
      topP: 0.95,
      topK: 12,
      seed,
      ignoreEos: true,
      n,
    }),
  };
}

async function tokensByChoice(stream: GenerationStream): Promise<number[][]> {
  const out: number[][] = [];
  for await (const d of stream as AsyncIterable<GenerationDelta>) {
    out[d.index] = [...(out[d.index] ?? []), ...d.tokenIds];
  }
  return out;
}

async function run(scheduler: EngineLoop): Promise<number[][][]> {
  return Promise.all([
    tokensByChoice(scheduler.submit(request('a', [1, 2, 3], 1234))),
    tokensByChoice(scheduler.submit(request('b', [7], 99, 2))),
  ]);
}

describe('Scheduler with an engine that samples (Engine.sampleStep)', () => {
  it('reads back token ids from the engine, and seeded requests get the tokens the host sampler gives', async () => {
    const host = await run(setup('host').scheduler);
    const { engine, scheduler } = setup('device');
    const device = await run(scheduler);
    expect(device).toEqual(host);
    expect(new Set(device[0][0]).size).toBeGreaterThan(3);
    const rows = (engine as SamplingFakeEngine).sampled;
    // Every sampled token went through sampleStep: 10 per choice, three choices.
    expect(rows.flat()).toHaveLength(30);
    for (const row of rows.flat()) {
      expect(row).toMatchObject({ temperature: 0.9, topK: 12, topP: 0.95 });
      expect(row.uniform).toBeGreaterThanOrEqual(0);
      expect(row.uniform).toBeLessThan(1);
    }
  });

  it('samples on the host when told to, even with an engine that could', async () => {
    const { engine, scheduler } = setup('device', false);
    expect(await run(scheduler)).toEqual(await run(setup('host').scheduler));
    expect((engine as SamplingFakeEngine).sampled).toHaveLength(0);
  });

  it('fails the step’s requests with a GenerationError when sampleStep fails', async () => {
    const { engine, scheduler } = setup('device');
    (engine as SamplingFakeEngine).failSampling = new Error('device sampler broke');
    const failure = await tokensByChoice(scheduler.submit(request('a', [1], 5))).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(GenerationError);
    expect((failure as Error).message).toContain('device sampler broke');
  });
});
