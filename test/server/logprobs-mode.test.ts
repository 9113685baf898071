import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * --logprobs-mode (vLLM's) through the API: processed log-probabilities are those of what each
 * token was drawn from (top_k's cut tokens at vLLM's -9999), raw logits differ from the raw
 * log-probabilities by one constant per position, and structured output masks even the raw ones,
 * as vLLM's grammar bitmask does before its sampler.
 */
const raw = useTinyServer('onnx');
const processed = useTinyServer('onnx', { logprobsMode: 'processed_logprobs' });
const rawLogits = useTinyServer('onnx', { logprobsMode: 'raw_logits' });

const request = { model: TINY_MODEL_NAME, prompt: 'The quick brown fox', max_tokens: 6, logprobs: 5 };

async function completion(server: typeof processed, extra: object) {
  const res = await server().post('/v1/completions', { ...request, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.choices[0].logprobs;
}

describe('--logprobs-mode', () => {
  it('processed_logprobs: a top_k 3 draw lists three tokens that sum to one, the rest at -9999', async () => {
    const logprobs = await completion(processed, { temperature: 0.8, top_k: 3, seed: 5 });
    for (const [i, top] of logprobs.top_logprobs.entries()) {
      const values = Object.values(top as Record<string, number>).sort((a, b) => b - a);
      expect(values.slice(3)).toEqual(values.slice(3).map(() => -9999));
      expect(values.slice(0, 3).reduce((sum, v) => sum + Math.exp(v), 0)).toBeCloseTo(1, 4);
      expect(values.slice(0, 3)).toContain(logprobs.token_logprobs[i]);
    }
  });

  it('raw_logits: logits, one constant from the log-probabilities of the same greedy tokens', async () => {
    const logits = await completion(rawLogits, { temperature: 0 });
    const logprobs = await completion(processed, { temperature: 0 });
    expect(logits.tokens).toEqual(logprobs.tokens);
    for (const [i, token] of logits.tokens.entries()) {
      const shift = logits.token_logprobs[i] - logprobs.token_logprobs[i];
      for (const [key, value] of Object.entries(logits.top_logprobs[i] as Record<string, number>))
        expect(value - logprobs.top_logprobs[i][key]).toBeCloseTo(shift, 3);
      expect(token).toBe(logprobs.tokens[i]);
    }
  });

  it('raw_logprobs under structured output: the allowed tokens share all the probability', async () => {
    const logprobs = await completion(raw, { temperature: 0, guided_regex: '[ab]{4}', max_tokens: 5 });
    expect(logprobs.tokens.slice(0, 4).every((t: string) => t === 'a' || t === 'b')).toBe(true);
    for (const [i, top] of logprobs.top_logprobs.slice(0, 4).entries()) {
      const entries = Object.entries(top as Record<string, number>);
      const allowed = entries.filter(([token]) => token === 'a' || token === 'b');
      expect(allowed.reduce((sum, [, v]) => sum + Math.exp(v), 0)).toBeCloseTo(1, 4);
      for (const [token, value] of entries) if (token !== 'a' && token !== 'b') expect(value).toBe(-9999);
      expect(logprobs.token_logprobs[i]).toBe(Math.max(...allowed.map(([, v]) => v)));
    }
  });
});
