import { describe, expect, it } from 'vitest';
import { EngineFailure, type SequenceStep, type StepPlan } from '../../kernels/engine.js';
import { OnnxEngine } from '../../kernels/onnx/onnx-engine.js';
import { EngineThreadUnavailable, OnnxWorkerEngine } from '../../kernels/onnx/onnx-worker-engine.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { syntheticAdapter, syntheticWeights, TINY_SPEC } from '../../model/synthetic.js';
import { randomTokens, referenceHarness, seededUniform } from './reference-harness.js';

/**
 * The onnx engine on its own thread (onnx-worker-engine.ts) against the same engine on this one:
 * the same graph and weights, so the same logits bit for bit, whatever crosses between threads
 * (adapter layouts by number, writes and releases in order with the steps).
 */
describe('onnx engine on a worker thread', () => {
  it('gives the logits the engine gives on the main thread, through adapter writes, releases and rewrites', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, intermediateSize: 112, seed: 41 });
    const config = weights.config;
    const h = referenceHarness(weights, 3000);
    const options = { threads: 1, maxChunkTokens: 8 };
    const here = await OnnxEngine.create(weights, h.pool, options);
    const worker = await OnnxWorkerEngine.create(weights, h.pool, options);
    try {
      expect(worker.graphLoraModules).toEqual(here.graphLoraModules);
      expect(worker.runLimits).toEqual(here.runLimits);
      const engines = [here, worker];
      // Contiguous pages (read in place through a slot) and scattered ones (gathered as segments).
      const adapters = [3, 8, 19].map((rank, i) =>
        h.loadInto(
          engines,
          syntheticAdapter(config, {
            name: `a${i}`,
            rank,
            alpha: rank * 2,
            targetModules: [...TARGET_MODULES],
            seed: 50 + i,
          }),
          i === 1 ? 11 : undefined,
        ),
      );
      const random = seededUniform(5);
      const pos = new Map<number, number>();
      const step = (
        ids: number[],
        adapterOf: (id: number) => (typeof adapters)[number] | null,
      ): StepPlan => ({
        sequences: ids.map((id): SequenceStep => {
          const start = pos.get(id) ?? 0;
          const n = start === 0 ? 1 + Math.floor(random() * 10) : 1;
          pos.set(id, start + n);
          return h.sequenceStep(
            id,
            randomTokens(n, config.vocabSize, id * 100 + start),
            start,
            adapterOf(id),
            'last',
          );
        }),
      });
      const compare = async (plan: StepPlan, what: string) => {
        const [a, b] = [await here.step(plan), await worker.step(plan)];
        expect(b.length, what).toBe(a.length);
        expect(
          Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(
            Buffer.from(a.buffer, a.byteOffset, a.byteLength),
          ),
          what,
        ).toBe(true);
      };
      for (let s = 0; s < 4; s++)
        await compare(
          step([1, 2, 3, 4], (id) => (id === 4 ? null : adapters[id - 1])),
          `step ${s}`,
        );
      expect(worker.numStackedAdapters).toBe(here.numStackedAdapters);

      // Adapter 0 replaced in place by other weights on new pages (load_inplace), the old placement
      // released: the next step uses the new weights on both threads.
      const replacement = h.loadInto(
        engines,
        syntheticAdapter(config, {
          name: 'a0',
          rank: 5,
          alpha: 9,
          targetModules: ['q_proj', 'down_proj'],
          seed: 99,
        }),
      );
      for (const e of engines) e.releaseAdapter(adapters[0]);
      h.pool.free(adapters[0].allPages);
      for (let s = 0; s < 3; s++)
        await compare(
          step([1, 2, 5], (id) => (id === 1 ? replacement : id === 2 ? adapters[1] : adapters[2])),
          `after replace ${s}`,
        );
      expect(worker.numStackedAdapters).toBe(here.numStackedAdapters);
    } finally {
      await here.close();
      await worker.close();
    }
  });

  it('copies weights it is lent and moves weights it is handed', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 3 });
    const h = referenceHarness(weights, 200);
    const lent = await OnnxWorkerEngine.create(weights, h.pool, { threads: 1 });
    await lent.close();
    expect(weights.embedTokens.length).toBe(weights.config.vocabSize * weights.config.hiddenSize);
    const handed = await OnnxWorkerEngine.create(weights, h.pool, { threads: 1, handOverWeights: true });
    try {
      // Moved: this thread's arrays are empty (detached), the worker still steps.
      expect(weights.layers[0].linear.gate_proj.length).toBe(0);
      const logits = await handed.step({ sequences: [h.sequenceStep(1, [1, 2, 3], 0, null, 'last')] });
      expect(logits.length).toBe(weights.config.vocabSize);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      await handed.close();
    }
  });

  it("leaves this thread's event loop turning while a step runs, where the engine on this thread holds it", async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 6 });
    const h = referenceHarness(weights, 4000);
    const options = { threads: 1 };
    const here = await OnnxEngine.create(weights, h.pool, options);
    const worker = await OnnxWorkerEngine.create(weights, h.pool, options);
    try {
      // Turns of this thread's event loop while one long prefill runs (a count, not a time).
      const turnsDuring = async (engine: OnnxEngine | OnnxWorkerEngine, seqId: number) => {
        const prompt = randomTokens(480, weights.config.vocabSize, seqId);
        let done = false;
        let turns = 0;
        const step = engine
          .step({ sequences: [h.sequenceStep(seqId, prompt, 0, null, 'last')] })
          .finally(() => {
            done = true;
          });
        while (!done) {
          await new Promise((resolve) => setImmediate(resolve));
          turns++;
        }
        await step;
        return turns;
      };
      const onThisThread = await turnsDuring(here, 1);
      const onWorker = await turnsDuring(worker, 2);
      // onnxruntime-node runs a session inside one turn (a setImmediate) and holds it throughout.
      const counts = `${onThisThread} turns on this thread, ${onWorker} on the worker`;
      expect(onThisThread, counts).toBeLessThan(5);
      expect(onWorker, counts).toBeGreaterThan(20 * onThisThread + 20);
    } finally {
      await here.close();
      await worker.close();
    }
  });

  it('refuses a bad step without harm, and reports a lost thread as a fatal engine failure', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 4 });
    const h = referenceHarness(weights, 200);
    const engine = await OnnxWorkerEngine.create(weights, h.pool, { threads: 1 });
    try {
      const good = () => ({ sequences: [h.sequenceStep(1, [5], 0, null, 'last' as const)] });
      const first = await engine.step(good());
      // A layout never written: refused here, before anything crosses.
      const strayLayout = { name: 'stray', rank: 2, modules: [], allPages: new Int32Array(0) };
      await expect(
        engine.step({ sequences: [{ ...good().sequences[0], adapter: strayLayout }] }),
      ).rejects.toThrow(/'stray' is in a step but was never written/);
      // Failing inside onnxruntime on the worker (a token id past the vocabulary): that step's error.
      await expect(
        engine.step({ sequences: [h.sequenceStep(2, [weights.config.vocabSize + 5], 0, null, 'last')] }),
      ).rejects.toThrow();
      expect(engine.fatalFailure()).toBeNull();
      expect(Array.from(await engine.step({ sequences: [h.sequenceStep(3, [5], 0, null, 'last')] }))).toEqual(
        Array.from(first),
      );

      // The thread fails under a step (as an uncaught error on it would): that step and every later
      // one fail with a fatal EngineFailure, and the thread is gone.
      const worker = (engine as unknown as { worker: import('node:worker_threads').Worker }).worker;
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      const pending = engine.step(good());
      worker.emit('error', new Error('out of memory'));
      const failure = await pending.then(
        () => null,
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(EngineFailure);
      expect((failure as EngineFailure).fatal).toBe(true);
      expect((failure as EngineFailure).message).toMatch(/out of memory/);
      expect(engine.fatalFailure()).toBe(failure);
      await expect(engine.step(good())).rejects.toBe(failure);
      await exited;
    } finally {
      await engine.close();
    }
  });
});

describe('onnx engine thread that cannot start', () => {
  it('fails before any weight crosses, so the caller can run the engine on its own thread', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 7 });
    const h = referenceHarness(weights, 200);
    const failed = await OnnxWorkerEngine.create(weights, h.pool, {
      threads: 1,
      handOverWeights: true,
      workerModule: new URL('./fixtures/engine-thread-that-cannot-start.ts', import.meta.url),
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failed).toBeInstanceOf(EngineThreadUnavailable);
    expect((failed as Error).message).toMatch(/cannot load the native library here/);
    // Handed over, yet never moved: the weights still serve an engine here.
    expect(weights.layers[0].linear.gate_proj.length).toBeGreaterThan(0);
    const here = await OnnxEngine.create(weights, h.pool, { threads: 1 });
    try {
      const logits = await here.step({ sequences: [h.sequenceStep(1, [1, 2], 0, null, 'last')] });
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      await here.close();
    }
  });
});

describe('onnx engine thread lost while idle', () => {
  it('is a fatal failure the next step reports', async () => {
    const weights = syntheticWeights({ ...TINY_SPEC, seed: 5 });
    const h = referenceHarness(weights, 200);
    const engine = await OnnxWorkerEngine.create(weights, h.pool, { threads: 1 });
    await (engine as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    expect(engine.fatalFailure()?.fatal).toBe(true);
    await expect(engine.step({ sequences: [h.sequenceStep(1, [5], 0, null, 'last')] })).rejects.toThrow(
      /thread exited/,
    );
    await engine.close();
  });
});
