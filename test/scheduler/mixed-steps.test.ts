import { describe, expect, it } from 'vitest';
import type { EngineChoice } from '../../kernels/engine-factory.js';
import { LlmEngine } from '../../scheduler/llm-engine.js';
import type { GenerationRequest } from '../../scheduler/request.js';
import type { SchedulingPolicyName } from '../../scheduler/scheduling-policy.js';
import { useTinyModel } from '../server/tiny-server.js';
import { fakeSampling } from './fake-scheduler.js';

const tiny = useTinyModel();

/** Short prompts that decode while long ones are still prefilling in chunks of a small budget. */
function requests(): GenerationRequest[] {
  const lengths = [3, 5, 60, 2, 45, 7, 80, 4];
  const names = [null, 'tiny-r2', 'tiny-r8', null, 'tiny-r4', 'tiny-r16', null, 'tiny-r3'];
  return lengths.map((length, i) => ({
    requestId: `r${i}`,
    promptTokens: Array.from({ length }, (_, t) => 32 + ((t * 7 + i * 13) % 90)),
    adapter: names[i],
    sampling: fakeSampling({ maxTokens: 12, ignoreEos: true }),
    // Read by the priority policy only.
    priority: (i % 3) - 1,
  }));
}

/** Greedy outputs of every request, and how many steps mixed a decode with a prefill chunk. */
async function generate(engine: EngineChoice, policy: SchedulingPolicyName) {
  const llm = await LlmEngine.create(
    {
      modelDir: tiny.modelDir,
      servedModelName: null,
      loraModules: tiny.adapters,
      maxModelLen: 256,
      maxNumSeqs: 16,
      maxNumBatchedTokens: 24,
      engine,
      poolSize: '8MiB',
      chatTemplateFile: null,
      seed: 1,
      schedulingPolicy: policy,
    },
    { info: () => {} },
  );
  let numMixed = 0;
  const inner = llm.engine.step.bind(llm.engine);
  llm.engine.step = (plan) => {
    const lengths = plan.sequences.map((s) => s.tokens.length);
    if (lengths.includes(1) && lengths.some((n) => n > 4)) numMixed++;
    return inner(plan);
  };
  try {
    const outputs = await Promise.all(
      requests().map(async (req) => {
        const ids: number[] = [];
        for await (const delta of llm.submit(req)) ids.push(...delta.tokenIds);
        return ids;
      }),
    );
    return { outputs, numMixed };
  } finally {
    await llm.close();
  }
}

describe('mixed prefill + decode steps', () => {
  for (const engine of ['onnx', 'reference'] as const) {
    it(`keep greedy outputs identical to separate steps on ${engine}, under slora and priority`, async () => {
      const separate = await generate(engine, 'fcfs');
      const mixed = await generate(engine, 'slora');
      expect(separate.numMixed).toBe(0);
      expect(mixed.numMixed).toBeGreaterThan(0);
      expect(mixed.outputs.every((ids) => ids.length === 12)).toBe(true);
      expect(mixed.outputs).toEqual(separate.outputs);
      // vLLM's priority order runs the same requests in another order, to the same outputs.
      const byPriority = await generate(engine, 'priority');
      expect(byPriority.numMixed).toBeGreaterThan(0);
      expect(byPriority.outputs).toEqual(separate.outputs);
    }, 120_000);
  }
});
