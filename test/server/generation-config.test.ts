import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSamplingDefaults } from '../../model/generation-defaults.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { CliError } from '../../server/cli-error.js';
import { parseCliOptions } from '../../server/cli-options.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/**
 * vLLM's --generation-config: the sampling defaults a model's generation_config.json recommends
 * apply to the fields a request leaves out (and its max_new_tokens caps max_tokens).
 */
describe('sampling defaults from generation_config.json', () => {
  async function withConfig(config: object, run: (dir: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'loom-gencfg-'));
    try {
      await writeFile(join(dir, 'generation_config.json'), JSON.stringify(config));
      await run(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("takes Llama 3.1 Instruct's recommendation, not transformers' own defaults", async () => {
    // Llama 3.1 8B Instruct's file: top_k is absent there; a stock 50 here recommends nothing.
    const llama = {
      bos_token_id: 128000,
      do_sample: true,
      eos_token_id: [128001, 128009],
      temperature: 0.6,
      top_p: 0.9,
      top_k: 50,
    };
    await withConfig(llama, async (dir) => {
      expect(await loadSamplingDefaults(dir)).toEqual({ temperature: 0.6, topP: 0.9 });
      expect(await loadSamplingDefaults(dir, 'vllm')).toEqual({});
      expect(await loadSamplingDefaults('/nonexistent', dir)).toEqual({ temperature: 0.6, topP: 0.9 });
      // Overrides are taken as given (a 50 there does turn top-k on), over the file's.
      expect(
        await loadSamplingDefaults(dir, 'auto', { top_k: 50, temperature: 0.2, max_new_tokens: 64 }),
      ).toEqual({
        temperature: 0.2,
        topP: 0.9,
        topK: 50,
        maxTokens: 64,
      });
    });
    await withConfig(
      { repetition_penalty: 1.1, min_p: 0.05, max_new_tokens: 256, top_k: -1 },
      async (dir) => {
        expect(await loadSamplingDefaults(dir)).toEqual({
          repetitionPenalty: 1.1,
          minP: 0.05,
          maxTokens: 256,
          topK: 0,
        });
      },
    );
  });

  it('refuses a value no request could give, naming the file and field; a model without the file has none', async () => {
    for (const bad of [
      { temperature: -1 },
      { top_p: 0 },
      { top_k: 2.5 },
      { max_new_tokens: 0 },
      { min_p: '0.1' },
    ]) {
      await withConfig(bad, async (dir) => {
        const err = await loadSamplingDefaults(dir).catch((e: unknown) => e);
        expect(err, JSON.stringify(bad)).toBeInstanceOf(ModelFormatError);
        expect((err as Error).message).toContain(Object.keys(bad)[0]);
      });
    }
    const empty = await mkdtemp(join(tmpdir(), 'loom-gencfg-'));
    expect(await loadSamplingDefaults(empty)).toEqual({});
    await expect(loadSamplingDefaults('/nonexistent', empty)).rejects.toThrow(/generation_config\.json/);
    await rm(empty, { recursive: true, force: true });
  });

  it('--generation-config and --override-generation-config on the command line', () => {
    const serve = (argv: string[]) => {
      const cmd = parseCliOptions(argv);
      if (cmd.kind !== 'serve') throw new Error('not serve');
      return cmd.options;
    };
    expect(serve([]).generationConfig).toBe('auto');
    expect(serve(['--generation-config', 'vllm']).generationConfig).toBe('vllm');
    expect(serve(['--override-generation-config', '{"temperature": 0.5}']).overrideGenerationConfig).toEqual({
      temperature: 0.5,
    });
    for (const [value, why] of [
      ['{"do_sample": true}', /"do_sample" is not a sampling default/],
      ['{"top_p": 2}', /"top_p" must be a number in \(0, 1\]/],
      ['[1]', /JSON object/],
      ['{', /not JSON/],
    ] as const) {
      expect(() => serve(['--override-generation-config', value])).toThrow(CliError);
      expect(() => serve(['--override-generation-config', value])).toThrow(why);
    }
  });
});

describe('sampling defaults over HTTP', () => {
  // The model recommends greedy decoding and at most 5 new tokens.
  const server = useTinyServer('onnx', (root) => {
    const dir = join(root, 'generation');
    mkdirSync(dir);
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ temperature: 0, max_new_tokens: 5 }));
    return { generationConfig: dir };
  });
  const complete = (extra: object) =>
    server().post('/v1/completions', {
      model: TINY_MODEL_NAME,
      prompt: 'Once upon',
      max_tokens: 20,
      ...extra,
    });

  it('a request without temperature samples at the recommended one; its own wins', async () => {
    const a = await complete({ seed: 1 });
    const b = await complete({ seed: 2 });
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(a.body.choices[0].text).toBe(b.body.choices[0].text);
    const hot = await Promise.all(
      [1, 2, 3].map((seed) => complete({ seed, temperature: 1.5, max_tokens: 5 })),
    );
    expect(new Set(hot.map((r) => r.body.choices[0].text)).size).toBeGreaterThan(1);
  });

  it('max_new_tokens caps max_tokens, as vLLM caps it', async () => {
    const res = await complete({ ignore_eos: true });
    expect(res.body.usage.completion_tokens).toBe(5);
    expect(res.body.choices[0].finish_reason).toBe('length');
    const chat = await server().post('/v1/chat/completions', {
      model: TINY_MODEL_NAME,
      messages: [{ role: 'user', content: 'Hi' }],
      ignore_eos: true,
    });
    expect(chat.body.usage.completion_tokens).toBe(5);
  });
});
