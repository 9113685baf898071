import { describe, expect, it } from 'vitest';
import { AdmissionError, type GenerationDelta, type GenerationStream } from '../../scheduler/request.js';
import { GenerationError, type Scheduler, type SchedulerLimits } from '../../scheduler/scheduler.js';
import { fcfsPolicy } from '../../scheduler/scheduling-policy.js';
import { FakeEngine, fakeAdapter, fakeKv, type NextToken, tableDecoder } from './fake-engine.js';
import { FAKE_EOS, fakeScheduler, fakeRequest as request } from './fake-scheduler.js';
import { ResidentAdapters } from './resident-adapters.js';

const EOS = FAKE_EOS;
/** The next token is the last one plus one: prompt [0, 1, 2] continues 3, 4, 5, … ('d', 'e', 'f', …). */
const counting: NextToken = (_seq, context) => (context[context.length - 1] + 1) % 26;
/** Depends on the whole context, so a recompute that lost or reordered tokens shows up. */
const contextSum: NextToken = (_seq, context) => context.reduce((a, b) => a + b, 0) % 26;
const flat: NextToken = () => new Float32Array(32);

interface Setup {
  kvPages?: number;
  limits?: Partial<SchedulerLimits>;
  next?: NextToken;
  vocab?: string[];
  drawSeed?: () => number;
}

function setup(s: Setup = {}) {
  const { pool, kvCache } = fakeKv((s.kvPages ?? 256) + 1);
  const engine = new FakeEngine(pool, s.next ?? counting);
  const resident = new Map([['ad1', fakeAdapter('ad1')]]);
  const adapters = new ResidentAdapters(resident);
  const scheduler = fakeScheduler(engine, kvCache, {
    adapters,
    newDecoder: tableDecoder(s.vocab),
    eosTokenIds: [EOS],
    limits: s.limits,
    drawSeed: s.drawSeed,
  });
  return { pool, kvCache, engine, scheduler, resident, adapters };
}

async function collect(stream: GenerationStream): Promise<GenerationDelta[]> {
  const deltas: GenerationDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return deltas;
}

/** The error a stream ends with (caught at once, so it is never an unhandled rejection), or null. */
function failureOf(deltas: Promise<GenerationDelta[]>): Promise<unknown> {
  return deltas.then(
    () => null,
    (error: unknown) => error,
  );
}

function choice(deltas: GenerationDelta[], index = 0) {
  const mine = deltas.filter((d) => d.index === index);
  return {
    text: mine.map((d) => d.text).join(''),
    tokenIds: mine.flatMap((d) => d.tokenIds),
    finishReason: mine[mine.length - 1]?.finishReason ?? null,
  };
}

describe('scheduler', () => {
  it('prefills, then streams one delta per token until maxTokens, and gives every page back', async () => {
    const { scheduler, engine, pool } = setup();
    const stream = scheduler.submit(request('a', [0, 1, 2], { maxTokens: 4 }));
    const deltas = await collect(stream);
    expect(deltas.map((d) => d.text)).toEqual(['d', 'e', 'f', 'g']);
    expect(choice(deltas)).toEqual({ text: 'defg', tokenIds: [3, 4, 5, 6], finishReason: 'length' });
    expect(stream.promptTokens).toBe(3);
    expect(stream.completionTokens).toBe(4);
    expect(engine.steps[0]).toEqual([
      { seqId: 1, tokens: [0, 1, 2], startPos: 0, logits: 'last', adapter: null },
    ]);
    expect(engine.steps[1]).toEqual([{ seqId: 1, tokens: [3], startPos: 3, logits: 'last', adapter: null }]);
    expect(engine.steps).toHaveLength(4);
    expect(pool.numUsed('kv')).toBe(0);
    expect(scheduler.stats()).toMatchObject({
      numRequests: 0,
      numWaiting: 0,
      numRunning: 0,
      numGeneratedTokens: 4,
    });
  });

  it('stops at EOS (its id reported, no text), and goes on past it with ignoreEos', async () => {
    const next: NextToken = (_s, context) => (context.length >= 5 ? EOS : counting(_s, context));
    const stopped = await collect(
      setup({ next }).scheduler.submit(request('a', [0, 1, 2], { maxTokens: 8 })),
    );
    expect(choice(stopped)).toEqual({ text: 'de', tokenIds: [3, 4, EOS], finishReason: 'stop' });
    const ignored = await collect(
      setup({ next }).scheduler.submit(request('a', [0, 1, 2], { maxTokens: 4, ignoreEos: true })),
    );
    expect(choice(ignored).tokenIds).toEqual([3, 4, EOS, EOS]);
    expect(choice(ignored).finishReason).toBe('length');
  });

  it('ends at a stop token id and at a stop string split across tokens, emitting nothing of the match', async () => {
    const vocab = ['Hel', 'lo', ' wor', 'ld', '!'];
    const script: NextToken = (_s, context) => context.length;
    const byId = await collect(
      setup({ next: script, vocab }).scheduler.submit(request('a', [0], { maxTokens: 8, stopTokenIds: [3] })),
    );
    expect(choice(byId)).toEqual({ text: 'lo wor', tokenIds: [1, 2, 3], finishReason: 'stop' });
    const byText = await collect(
      setup({ next: script, vocab }).scheduler.submit(request('a', [0], { maxTokens: 8, stop: ['o w'] })),
    );
    expect(choice(byText)).toEqual({ text: 'l', tokenIds: [1, 2], finishReason: 'stop' });
  });

  it('ends with length at the model context limit', async () => {
    const { scheduler } = setup({ limits: { maxModelLen: 6 } });
    const deltas = await collect(scheduler.submit(request('a', [0, 1, 2], { maxTokens: 10 })));
    expect(choice(deltas)).toEqual({ text: 'def', tokenIds: [3, 4, 5], finishReason: 'length' });
  });

  it('runs n choices as separate sequences of one stream', async () => {
    const { scheduler, engine, pool } = setup({ next: flat });
    const deltas = await collect(
      scheduler.submit(
        request('a', [0, 1], { n: 2, temperature: 1, seed: 7, maxTokens: 5, ignoreEos: true }),
      ),
    );
    const [first, second] = [choice(deltas, 0), choice(deltas, 1)];
    expect(first.tokenIds).toHaveLength(5);
    expect(second.tokenIds).toHaveLength(5);
    expect(first.finishReason).toBe('length');
    expect(second.finishReason).toBe('length');
    expect(first.tokenIds).not.toEqual(second.tokenIds);
    expect(engine.steps[0].map((s) => s.seqId)).toEqual([1, 2]);
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('samples reproducibly from a seed, whatever shares the batch; a missing seed is drawn', async () => {
    const sampling = { temperature: 0.8, topK: 20, seed: 1234, maxTokens: 12, ignoreEos: true };
    const alone = choice(await collect(setup({ next: flat }).scheduler.submit(request('a', [5], sampling))));
    const { scheduler } = setup({ next: flat });
    const [crowded] = await Promise.all([
      collect(scheduler.submit(request('a', [5], sampling))),
      collect(scheduler.submit(request('b', [9, 9, 9], { ...sampling, seed: 99, n: 2 }))),
    ]);
    expect(choice(crowded).tokenIds).toEqual(alone.tokenIds);
    const drawn = setup({ next: flat, drawSeed: () => 1234 }).scheduler;
    expect(
      choice(await collect(drawn.submit(request('a', [5], { ...sampling, seed: null })))).tokenIds,
    ).toEqual(alone.tokenIds);
    expect(new Set(alone.tokenIds).size).toBeGreaterThan(3);
  });

  it('continuous batching: a request arriving mid-run joins at the next step, a finished one leaves', async () => {
    const { scheduler, engine } = setup();
    let late: Promise<GenerationDelta[]> | null = null;
    engine.onStep = (i) => {
      if (i === 1) late = collect(scheduler.submit(request('b', [10, 11], { maxTokens: 6 })));
    };
    const early = await collect(
      scheduler.submit(request('a', [0, 1, 2], { maxTokens: 6 }, { adapter: 'ad1' })),
    );
    const lateDeltas = await late!;
    expect(choice(early).tokenIds).toEqual([3, 4, 5, 6, 7, 8]);
    expect(choice(lateDeltas).tokenIds).toEqual([12, 13, 14, 15, 16, 17]);
    expect(engine.steps.map((step) => step.map((s) => s.seqId))).toEqual([
      [1],
      [1],
      [2],
      [1, 2],
      [1, 2],
      [1, 2],
      [1, 2],
      [2],
    ]);
    expect(engine.steps[3].map((s) => s.adapter)).toEqual(['ad1', null]);
  });

  it('prefills a prompt longer than the token budget in chunks', async () => {
    const { scheduler, engine } = setup({
      next: contextSum,
      limits: { maxNumBatchedTokens: 4, maxNumSeqs: 4 },
    });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const deltas = await collect(scheduler.submit(request('a', prompt, { maxTokens: 2 })));
    expect(
      engine.steps.slice(0, 3).map((step) => step.map((s) => [s.startPos, s.tokens.length, s.logits])),
    ).toEqual([[[0, 4, 'none']], [[4, 4, 'none']], [[8, 2, 'last']]]);
    expect(choice(deltas).tokenIds).toEqual([55 % 26, 110 % 26]);
  });

  it('preempts by recompute when the pool runs short, and outputs stay what they would be alone', async () => {
    const sampling = { maxTokens: 8, ignoreEos: true };
    const soloA = choice(
      await collect(setup({ next: contextSum }).scheduler.submit(request('a', [1, 2, 3, 4], sampling))),
    );
    const soloB = choice(
      await collect(setup({ next: contextSum }).scheduler.submit(request('b', [5, 6, 7, 8], sampling))),
    );
    // Each needs 12 pages at its longest; 16 pages hold one of them, not both.
    const { scheduler, pool } = setup({ next: contextSum, kvPages: 16 });
    const [a, b] = await Promise.all([
      collect(scheduler.submit(request('a', [1, 2, 3, 4], sampling))),
      collect(scheduler.submit(request('b', [5, 6, 7, 8], sampling))),
    ]);
    expect(choice(a)).toEqual(soloA);
    expect(choice(b)).toEqual(soloB);
    expect(scheduler.stats().numPreemptions).toBeGreaterThan(0);
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('ends a choice with length when the pool cannot hold it even alone', async () => {
    const { scheduler, pool } = setup({ kvPages: 8 });
    const deltas = await collect(scheduler.submit(request('a', [0, 1, 2, 3], { maxTokens: 20 })));
    expect(choice(deltas)).toEqual({ text: 'efghi', tokenIds: [4, 5, 6, 7, 8], finishReason: 'length' });
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('refuses at admission: queue full, a prompt that can never fit, after close', async () => {
    const { scheduler, engine } = setup({ kvPages: 16, limits: { maxWaiting: 3 } });
    let open!: () => void;
    engine.gate = new Promise((resolve) => {
      open = resolve;
    });
    const running = collect(scheduler.submit(request('a', [1])));
    const queued = collect(scheduler.submit(request('b', [1], { n: 2 })));
    expect(() => scheduler.submit(request('c', [1]))).toThrow(AdmissionError);
    expect(() => scheduler.submit(request('d', Array(40).fill(1)))).toThrow(/never|needs 42 KV pages/);
    expect(() => scheduler.submit(request('e', Array(64).fill(1)))).toThrow(/maxModelLen/);
    expect(() => scheduler.submit(request('f', [1], {}, { adapter: 'nope' }))).toThrow(
      /adapter "nope" is not loaded/,
    );
    engine.gate = null;
    open();
    await Promise.all([running, queued]);
    await scheduler.close();
    expect(() => scheduler.submit(request('g', [1]))).toThrow(AdmissionError);
  });

  it('abort through the signal ends the choice and frees its pages before the next step', async () => {
    const { scheduler, engine, kvCache } = setup();
    const controller = new AbortController();
    const seen: Array<{ step: number; hasA: boolean; aInPlan: boolean }> = [];
    engine.onStep = (i) => {
      seen.push({ step: i, hasA: kvCache.has(1), aInPlan: engine.steps[i].some((s) => s.seqId === 1) });
      if (i === 3) controller.abort();
    };
    const a = collect(scheduler.submit(request('a', [0], { maxTokens: 50 }, { signal: controller.signal })));
    const b = collect(scheduler.submit(request('b', [0], { maxTokens: 8 })));
    const aDeltas = await a;
    expect(choice(aDeltas).finishReason).toBe('abort');
    await b;
    const after = seen.filter((s) => s.step > 3);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((s) => !s.hasA && !s.aInPlan)).toBe(true);
    expect(kvCache.pool.numUsed('kv')).toBe(0);
  });

  it('a consumer leaving the loop early cancels the request and frees its pages', async () => {
    const { scheduler, engine, pool } = setup();
    const stream = scheduler.submit(request('a', [0], { maxTokens: 50 }));
    let count = 0;
    for await (const _ of stream) if (++count === 3) break;
    await collect(scheduler.submit(request('b', [0], { maxTokens: 3 })));
    expect(engine.steps.flat().filter((s) => s.seqId === 1).length).toBeLessThan(6);
    expect(pool.numUsed('kv')).toBe(0);
    expect(scheduler.stats().numRequests).toBe(0);
  });

  it('an engine error fails only the requests in that step; the others go on', async () => {
    const { scheduler, engine, pool } = setup();
    engine.failWhen = (plan) =>
      plan.sequences.some((s) => Array.from(s.tokens).includes(13)) ? new Error('device lost') : null;
    let bad: Promise<unknown> | null = null;
    engine.onStep = (i) => {
      if (i === 1) bad = failureOf(collect(scheduler.submit(request('bad', [13, 13], { maxTokens: 4 }))));
    };
    const good = await collect(scheduler.submit(request('good', [0], { maxTokens: 6 })));
    expect(choice(good)).toEqual({ text: 'bcdefg', tokenIds: [1, 2, 3, 4, 5, 6], finishReason: 'length' });
    const failure = await bad!;
    expect(failure).toBeInstanceOf(GenerationError);
    expect(String(failure)).toMatch(/engine step failed: device lost/);
    expect(pool.numUsed('kv')).toBe(0);
  });

  it('a request whose output cannot be taken (its decoder throws) fails alone; the server goes on', async () => {
    const { pool, kvCache } = fakeKv(65);
    const scheduler = fakeScheduler(new FakeEngine(pool, counting), kvCache, {
      newDecoder: () => ({
        push: (id) => {
          if (id === 3) throw new Error('decoder broke');
          return 'x';
        },
        flush: () => '',
      }),
      limits: { maxNumSeqs: 4, maxNumBatchedTokens: 16, maxModelLen: 32, maxWaiting: 8 },
    });
    const failure = await failureOf(collect(scheduler.submit(request('a', [0], { maxTokens: 8 }))));
    expect(String(failure)).toMatch(/request a: decoder broke/);
    expect(pool.numUsed('kv')).toBe(0);
    expect(choice(await collect(scheduler.submit(request('b', [5], { maxTokens: 2 })))).tokenIds).toEqual([
      6, 7,
    ]);
  });

  it('a fault in the scheduler itself fails the live requests instead of hanging them', async () => {
    const { pool, kvCache } = fakeKv(65);
    let faults = 1;
    const scheduler = fakeScheduler(new FakeEngine(pool, counting), kvCache, {
      policy: {
        ...fcfsPolicy,
        schedule: (input) => {
          if (faults-- > 0) throw new Error('policy broke');
          return fcfsPolicy.schedule(input);
        },
      },
      limits: { maxNumSeqs: 4, maxNumBatchedTokens: 16, maxModelLen: 32, maxWaiting: 8 },
    });
    const failure = await failureOf(collect(scheduler.submit(request('a', [0], { maxTokens: 8 }))));
    expect(String(failure)).toMatch(/scheduler failed: policy broke/);
    expect(pool.numUsed('kv')).toBe(0);
    expect(choice(await collect(scheduler.submit(request('b', [5], { maxTokens: 2 })))).tokenIds).toEqual([
      6, 7,
    ]);
  });

  it('lets a request whose adapter is not resident wait while others run, then runs it', async () => {
    const { scheduler, resident, engine, adapters } = setup();
    const layout = resident.get('ad1')!;
    resident.delete('ad1');
    const waiting = collect(scheduler.submit(request('b', [0], { maxTokens: 2 }, { adapter: 'ad1' })));
    await collect(scheduler.submit(request('a', [0], { maxTokens: 3 })));
    expect(engine.steps.every((step) => step.every((s) => s.adapter === null))).toBe(true);
    resident.set('ad1', layout);
    await collect(scheduler.submit(request('c', [0], { maxTokens: 1 })));
    expect(choice(await waiting).finishReason).toBe('length');
    expect(adapters.pins.get('ad1')).toBe(0);
    expect(adapters.requests.get('ad1')).toBe(0);
  });

  it('tells residency which adapters the running and waiting sequences need', async () => {
    const { scheduler, engine, resident } = setup({ limits: { maxNumSeqs: 1, maxNumBatchedTokens: 4 } });
    resident.set('ad2', fakeAdapter('ad2'));
    let seen: ReturnType<Scheduler['adaptersInUse']> | null = null;
    engine.onStep = () => {
      seen ??= scheduler.adaptersInUse();
    };
    await Promise.all([
      collect(scheduler.submit(request('a', [0], {}, { adapter: 'ad1' }))),
      collect(scheduler.submit(request('b', [0]))),
      collect(scheduler.submit(request('c', [0], { n: 2 }, { adapter: 'ad2' }))),
    ]);
    expect(seen).toEqual({ running: ['ad1'], waiting: ['ad2'] });
    expect(scheduler.adaptersInUse()).toEqual({ running: [], waiting: [] });
  });

  it('close() ends open streams with abort and resolves once the step in flight is done', async () => {
    const { scheduler, engine, pool } = setup();
    let open!: () => void;
    engine.gate = new Promise((resolve) => {
      open = resolve;
    });
    const started = new Promise<void>((resolve) => {
      engine.onStep = () => resolve();
    });
    const a = collect(scheduler.submit(request('a', [0], { maxTokens: 50, n: 2 })));
    const b = collect(scheduler.submit(request('b', [0], { maxTokens: 50 })));
    await started;
    const closed = scheduler.close();
    expect(pool.numUsed('kv')).toBeGreaterThan(0);
    open();
    await closed;
    const [aDeltas, bDeltas] = await Promise.all([a, b]);
    expect([choice(aDeltas, 0), choice(aDeltas, 1), choice(bDeltas)].map((c) => c.finishReason)).toEqual([
      'abort',
      'abort',
      'abort',
    ]);
    expect(pool.numUsed('kv')).toBe(0);
    expect(engine.steps).toHaveLength(1);
  });
});
