import { describe, expect, it } from 'vitest';
import { OnnxWorkerEngine } from '../../kernels/onnx/onnx-worker-engine.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { LlmEngine, type LlmEngineOptions } from '../../scheduler/llm-engine.js';
import { buildServingStack } from '../../server/serving-stack.js';
import { useTinyModel } from '../server/tiny-server.js';
import { fakeSampling } from './fake-scheduler.js';

const tiny = useTinyModel();

/** The tiny model with no adapter source; tests add what they vary. */
function options(): LlmEngineOptions {
  return {
    modelDir: tiny.modelDir,
    servedModelName: null,
    loraModules: [],
    maxModelLen: 128,
    maxNumSeqs: 8,
    maxNumBatchedTokens: 128,
    engine: 'onnx',
    poolSize: '8MiB',
    chatTemplateFile: null,
    seed: 1,
  };
}

async function start(overrides: Partial<LlmEngineOptions>) {
  const lines: string[] = [];
  const llm = await LlmEngine.create(
    { ...options(), ...overrides },
    { info: (_fields, msg) => lines.push(msg) },
  );
  return { llm, lines };
}

/** Greedy tokens of the base model for a few prompts, batched together. */
async function greedy(llm: LlmEngine): Promise<number[][]> {
  return Promise.all(
    [4, 9, 2, 17].map(async (length, i) => {
      const ids: number[] = [];
      const stream = llm.submit({
        requestId: `r${i}`,
        promptTokens: Array.from({ length }, (_, t) => 40 + ((t * 11 + i * 5) % 80)),
        adapter: null,
        sampling: fakeSampling({ maxTokens: 10, ignoreEos: true }),
      });
      for await (const delta of stream) ids.push(...delta.tokenIds);
      return ids;
    }),
  );
}

describe('an engine with no adapter source (no --lora-modules, --lora-dir or --lora-root)', () => {
  it('is built without LoRA layers, generates what the LoRA-ready graph does, and refuses adapter loads', async () => {
    const bare = await start({ runtimeAdapterLoads: false });
    const ready = await start({ runtimeAdapterLoads: true });
    try {
      expect(bare.llm.servesAdapters).toBe(false);
      expect(ready.llm.servesAdapters).toBe(true);
      expect(bare.lines).toContain(
        'no adapter source (--lora-modules, --lora-dir, --lora-root): the engine is built without LoRA layers',
      );
      expect(bare.llm.engine).toBeInstanceOf(OnnxWorkerEngine);
      expect((bare.llm.engine as OnnxWorkerEngine).graphLoraModules).toEqual([]);
      expect((ready.llm.engine as OnnxWorkerEngine).graphLoraModules).toEqual(TARGET_MODULES);
      const outputs = await greedy(bare.llm);
      expect(outputs.every((ids) => ids.length === 10)).toBe(true);
      expect(outputs).toEqual(await greedy(ready.llm));
      await expect(bare.llm.adapters.load('late', tiny.adapters[0].path, false)).rejects.toThrow(
        'adapter "late": this engine was started without adapters (no --lora-modules, --lora-dir or --lora-root), so it has no LoRA layers to load one into',
      );
      expect(bare.llm.adapters.list()).toEqual([]);
      // The same load goes through where adapters may come at run time.
      await ready.llm.adapters.load('late', tiny.adapters[0].path, false);
      expect(ready.llm.adapters.list().map((a) => a.name)).toEqual(['late']);
    } finally {
      await bare.llm.close();
      await ready.llm.close();
    }
  });

  it('the serving stack keeps the LoRA layers exactly when --lora-root allows runtime loads', async () => {
    for (const loraRoot of [null, tiny.root]) {
      const stack = await buildServingStack({ ...options(), loraRoot }, { info: () => {} });
      try {
        expect((stack.scheduler as LlmEngine).servesAdapters).toBe(loraRoot !== null);
      } finally {
        await stack.close();
      }
    }
  });

  it('keeps the LoRA layers when adapters are registered at start-up', async () => {
    const { llm } = await start({ loraModules: tiny.adapters.slice(0, 1), runtimeAdapterLoads: false });
    try {
      expect(llm.servesAdapters).toBe(true);
      expect((llm.engine as OnnxWorkerEngine).graphLoraModules).toEqual(TARGET_MODULES);
    } finally {
      await llm.close();
    }
  });
});
