import { describe, expect, it } from 'vitest';
import { WebGpuEngine } from '../../kernels/webgpu/webgpu-engine.js';
import { runLogprobScenario, scenarioWeights } from '../kernels/logprobs-scenario.js';
import { startTinyServer, TINY_MODEL_NAME, type TinyServer } from '../server/tiny-server.js';
import { openSuiteContext } from './gpu-test-kit.js';

const ctx = await openSuiteContext('webgpu engine logprobs');

describe.skipIf(!ctx)('log-probabilities computed on the device by the webgpu engine', () => {
  it('match the reference engine’s log-softmax in a mixed batch, prompt scoring included', async () => {
    const { numChecked } = await runLogprobScenario(
      (h) => WebGpuEngine.create(scenarioWeights(), h.pool, { context: ctx! }),
      (engine, plan, sampling) => {
        if (!engine.sampleStep) throw new Error('the webgpu engine samples on the device');
        return engine.sampleStep(plan, sampling);
      },
    );
    expect(numChecked).toBeGreaterThan(20);
  });

  it('split over several submits when the scored rows’ logits would not fit one buffer', async () => {
    const { numChecked } = await runLogprobScenario(
      (h) => WebGpuEngine.create(scenarioWeights(), h.pool, { context: ctx!, maxLogitRows: 3 }),
      (engine, plan, sampling) => {
        if (!engine.sampleStep) throw new Error('the webgpu engine samples on the device');
        return engine.sampleStep(plan, sampling);
      },
    );
    expect(numChecked).toBeGreaterThan(20);
  });
});

interface ScoredChoice {
  text: string;
  logprobs: { tokens: string[]; token_logprobs: Array<number | null> };
}

/** Echoed, scored completions for three adapters and the base model at once (one mixed batch). */
async function scoredCompletions(server: TinyServer): Promise<ScoredChoice[]> {
  const one = async (model: string, logprobs: number) => {
    const res = await server.app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0, echo: true, logprobs },
    });
    expect(res.statusCode).toBe(200);
    return res.json().choices[0] as ScoredChoice;
  };
  return Promise.all([
    one(TINY_MODEL_NAME, 0),
    one('tiny-r2', 3),
    one('tiny-r8', 20),
    one('tiny-pattern', 1),
  ]);
}

describe.skipIf(!ctx)('the server on the webgpu engine', () => {
  it('answers echo + logprobs as the onnx engine does (same tokens, values within 1e-4)', async () => {
    const onnx = await startTinyServer('onnx');
    const expected = await scoredCompletions(onnx).finally(() => onnx.close());
    const webgpu = await startTinyServer('webgpu', { dtype: 'f32' });
    const got = await scoredCompletions(webgpu).finally(() => webgpu.close());
    got.forEach((choice, i) => {
      expect(choice.text).toBe(expected[i].text);
      expect(choice.logprobs.tokens).toEqual(expected[i].logprobs.tokens);
      choice.logprobs.token_logprobs.forEach((value, t) => {
        const want = expected[i].logprobs.token_logprobs[t];
        if (want === null) expect(value).toBeNull();
        else expect(Math.abs((value as number) - want)).toBeLessThanOrEqual(1e-4);
      });
    });
  });

  it('masks raw log-probabilities under structured output as the onnx engine does (on the host)', async () => {
    const body = {
      model: TINY_MODEL_NAME,
      prompt: 'Once upon a time',
      max_tokens: 4,
      temperature: 0,
      logprobs: 4,
      guided_regex: '[ab]{3}',
    };
    const answer = async (server: TinyServer) => {
      const res = await server.app.inject({ method: 'POST', url: '/v1/completions', payload: body });
      expect(res.statusCode).toBe(200);
      return res.json().choices[0].logprobs as ScoredChoice['logprobs'];
    };
    const onnx = await startTinyServer('onnx');
    const expected = await answer(onnx).finally(() => onnx.close());
    const webgpu = await startTinyServer('webgpu', { dtype: 'f32' });
    const got = await answer(webgpu).finally(() => webgpu.close());
    expect(got.tokens).toEqual(expected.tokens);
    got.token_logprobs.forEach((value, t) => {
      expect(Math.abs((value as number) - (expected.token_logprobs[t] as number))).toBeLessThanOrEqual(1e-4);
    });
    // Masked: the grammar's tokens hold all the probability of each of the three positions.
    for (const value of expected.token_logprobs.slice(0, 3))
      expect(value as number).toBeGreaterThan(Math.log(0.4));
  });

  it('draws typical_p rows on the host: a mass that keeps one token makes every seed agree', async () => {
    const webgpu = await startTinyServer('webgpu', { dtype: 'f32' });
    try {
      const texts = new Set<string>();
      for (const seed of [1, 2, 3]) {
        const res = await webgpu.app.inject({
          method: 'POST',
          url: '/generate',
          payload: { inputs: 'Once upon a time', parameters: { typical_p: 1e-9, seed, max_new_tokens: 8 } },
        });
        expect(res.statusCode).toBe(200);
        texts.add(res.json().generated_text);
      }
      expect(texts.size).toBe(1);
    } finally {
      await webgpu.close();
    }
  });
});
