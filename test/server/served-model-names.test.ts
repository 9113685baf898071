import { describe, expect, it } from 'vitest';
import { CliError } from '../../server/cli-error.js';
import { parseCliOptions } from '../../server/cli-options.js';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/** vLLM's --served-model-name takes several names: any of them serves the base model, answers give the first. */
describe('several served model names', () => {
  it('are read from one --served-model-name, and may not repeat or be an adapter', () => {
    const serve = (argv: string[]) => {
      const cmd = parseCliOptions(argv);
      if (cmd.kind !== 'serve') throw new Error('not serve');
      return cmd.options;
    };
    const options = serve(['--served-model-name', 'main', 'gpt-4o', 'alias', '--port', '9000']);
    expect(options.servedModelName).toBe('main');
    expect(options.servedModelAliases).toEqual(['gpt-4o', 'alias']);
    expect(options.port).toBe(9000);
    expect(() => serve(['--served-model-name', 'a', 'a'])).toThrow(/given twice/);
    expect(() => serve(['--served-model-name', 'a', 'b', '--lora-modules', 'b=/x'])).toThrow(CliError);
  });

  const server = useTinyServer('onnx', { modelAliases: ['gpt-4o-mini'] });

  it('serve the base model under each name, answer with the first, and list each', async () => {
    const body = { prompt: 'Hi', max_tokens: 3, temperature: 0 };
    const byAlias = await server().post('/v1/completions', { ...body, model: 'gpt-4o-mini' });
    const byName = await server().post('/v1/completions', { ...body, model: TINY_MODEL_NAME });
    expect(byAlias.status, JSON.stringify(byAlias.body)).toBe(200);
    expect(byAlias.body.model).toBe(TINY_MODEL_NAME);
    expect(byAlias.body.choices[0].text).toBe(byName.body.choices[0].text);
    const chat = await server().client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
    });
    expect(chat.model).toBe(TINY_MODEL_NAME);
    const ids = (await server().client.models.list()).data.map((m) => m.id);
    expect(ids.slice(0, 2)).toEqual([TINY_MODEL_NAME, 'gpt-4o-mini']);
    expect((await server().client.models.retrieve('gpt-4o-mini')).id).toBe('gpt-4o-mini');
    const unknown = await server().post('/v1/completions', { ...body, model: 'gpt-5' });
    expect(unknown.status).toBe(404);
  });
});
