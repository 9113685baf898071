import type OpenAI from 'openai';
import { expect, it } from 'vitest';
import { startTinyServer, TINY_MODEL_NAME } from './tiny-server.js';

/** The first few sampled completions a fresh server gives for requests that bring no seed. */
async function firstSampledTexts(seed: number | null): Promise<string[]> {
  const server = await startTinyServer('reference', { seed });
  try {
    const texts: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = (await server.client.completions.create({
        model: TINY_MODEL_NAME,
        prompt: 'Sample me',
        temperature: 1,
        max_tokens: 8,
        ignore_eos: true,
      } as never)) as OpenAI.Completion;
      texts.push(res.choices[0].text);
    }
    return texts;
  } finally {
    await server.close();
  }
}

it('--seed makes unseeded requests reproducible across restarts, each request still its own draw', async () => {
  const first = await firstSampledTexts(1234);
  expect(await firstSampledTexts(1234)).toEqual(first);
  expect(new Set(first).size).toBeGreaterThan(1);
});
