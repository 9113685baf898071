import { describe, expect, it } from 'vitest';
import { TINY_MODEL_NAME, useTinyServer } from './tiny-server.js';

/** include_stop_str_in_output and skip_special_tokens over HTTP on the real stack (onnx engine). */
const server = useTinyServer('onnx');

const BASE = {
  model: TINY_MODEL_NAME,
  prompt: 'Once upon a time',
  max_tokens: 16,
  temperature: 0,
  ignore_eos: true,
};

async function text(extra: object): Promise<{ text: string; finish: string; stopReason: unknown }> {
  const res = await server().post('/v1/completions', { ...BASE, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const [choice] = res.body.choices;
  return { text: choice.text, finish: choice.finish_reason, stopReason: choice.stop_reason };
}

async function streamedText(extra: object): Promise<string> {
  const res = await fetch(`${server().baseURL}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...BASE, ...extra, stream: true }),
  });
  const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
  return events.map((e) => JSON.parse(e.slice('data: '.length)).choices[0]?.text ?? '').join('');
}

describe('what the text holds', () => {
  it('include_stop_str_in_output ends the text with the stop string, streamed or not', async () => {
    const full = (await text({})).text;
    const stop = full.slice(5, 8);
    const at = full.indexOf(stop);
    expect(await text({ stop })).toEqual({ text: full.slice(0, at), finish: 'stop', stopReason: stop });
    const included = await text({ stop, include_stop_str_in_output: true });
    expect(included).toEqual({ text: full.slice(0, at + stop.length), finish: 'stop', stopReason: stop });
    expect(await streamedText({ stop, include_stop_str_in_output: true })).toBe(included.text);
    expect(await streamedText({ stop })).toBe(full.slice(0, at));
  });

  it('skip_special_tokens: false writes special tokens into the text', async () => {
    const [eos] = server().llm.engine.config.eosTokenIds;
    const eosText = server().stack.tokenizer.decode([eos], false);
    expect(eosText.length).toBeGreaterThan(0);
    // EOS forced by logit_bias and not stopping (ignore_eos): skipped by default, written when asked.
    const forced = { max_tokens: 3, logit_bias: { [String(eos)]: 100 } };
    expect((await text(forced)).text).toBe('');
    expect((await text({ ...forced, skip_special_tokens: false })).text).toBe(eosText.repeat(3));
    // A stop token's text joins the output only with include_stop_str_in_output.
    const stopping = {
      max_tokens: 3,
      ignore_eos: false,
      logit_bias: { [String(eos)]: 100 },
      skip_special_tokens: false,
    };
    expect(await text(stopping)).toMatchObject({ text: '', finish: 'stop' });
    expect(await text({ ...stopping, include_stop_str_in_output: true })).toMatchObject({
      text: eosText,
      finish: 'stop',
    });
  });

  it('spaces_between_special_tokens: adjacent special tokens are joined as the fast tokenizer decodes them, either way', async () => {
    // vLLM's detokenizer for tokenizer.json tokenizers (FastIncrementalDetokenizer) and Hugging
    // Face's PreTrainedTokenizerFast.decode do not take the flag: only slow tokenizers put spaces
    // between added tokens, and Loom's tokenizers are all tokenizer.json ones.
    const [eos] = server().llm.engine.config.eosTokenIds;
    const eosText = server().stack.tokenizer.decode([eos], false);
    const forced = { max_tokens: 3, logit_bias: { [String(eos)]: 100 }, skip_special_tokens: false };
    expect(server().stack.tokenizer.decode([eos, eos, eos], false)).toBe(eosText.repeat(3));
    for (const spaces of [true, false, null]) {
      const asked = { ...forced, spaces_between_special_tokens: spaces };
      expect((await text(asked)).text).toBe(eosText.repeat(3));
      expect(await streamedText(asked)).toBe(eosText.repeat(3));
    }
  });
});
