import type OpenAI from 'openai';
import { TINY_ADAPTERS, TINY_MODEL_NAME } from './tiny-server.js';

const PROMPTS = ['Once upon a time', 'The quick brown fox', 'In a hole in the ground'];

/**
 * Greedy completions for the base model and every tiny adapter × three prompts, all sent at once
 * (so they share batches), in a fixed order: two servers that must agree are compared on these.
 */
export async function greedyTexts(client: OpenAI, maxTokens = 10): Promise<string[]> {
  const models = [TINY_MODEL_NAME, ...TINY_ADAPTERS.map((a) => a.name)];
  const requests = models.flatMap((model) =>
    PROMPTS.map(async (prompt) => {
      const res = (await client.completions.create({
        model,
        prompt,
        temperature: 0,
        max_tokens: maxTokens,
        ignore_eos: true,
      } as never)) as OpenAI.Completion;
      return `${model} | ${prompt} | ${res.choices[0].text}`;
    }),
  );
  return Promise.all(requests);
}
