import { join } from 'node:path';
import { readJsonObject } from './config-file.js';
import { ModelFormatError } from './model-format-error.js';

/**
 * The sampling defaults a model's creator recommends in its generation_config.json, which vLLM
 * applies to every request that leaves the field out (`--generation-config auto`, its default):
 * Llama 3.1 Instruct's file asks temperature 0.6 and top_p 0.9, so a request without them samples
 * so, on vLLM and on Loom alike. Absent fields keep the API's own defaults.
 */
export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  /** 0: off. */
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  /** generation_config's max_new_tokens: the most tokens a request gets, even one asking more (as vLLM caps it). */
  maxTokens?: number;
}

/** The generation_config.json fields vLLM takes as sampling defaults (get_diff_sampling_param). */
export const SAMPLING_DEFAULT_FIELDS = [
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'repetition_penalty',
  'max_new_tokens',
] as const;

/**
 * transformers' GenerationConfig defaults: a file's value equal to one recommends nothing (vLLM
 * reads the file through `to_diff_dict`, which drops them), so a stock `"top_k": 50` does not
 * turn top-k on.
 */
const TRANSFORMERS_DEFAULTS: Readonly<Record<string, number>> = {
  temperature: 1,
  top_p: 1,
  top_k: 50,
  repetition_penalty: 1,
};

/** Where the defaults come from: vLLM's --generation-config (auto: the model's; vllm: none; else a folder). */
export type GenerationConfigSource = 'auto' | 'vllm' | string;

/**
 * The sampling defaults for `modelDir`: from `source`'s generation_config.json (the model's for
 * 'auto', none for 'vllm', a folder's otherwise, which must hold one), then `overrides`
 * (--override-generation-config, already checked by checkSamplingOverrides) on top.
 */
export async function loadSamplingDefaults(
  modelDir: string,
  source: GenerationConfigSource = 'auto',
  overrides: Readonly<Record<string, unknown>> = {},
): Promise<SamplingDefaults> {
  let fromFile: SamplingDefaults = {};
  if (source !== 'vllm') {
    const file = join(source === 'auto' ? modelDir : source, 'generation_config.json');
    const config = await readJsonObject(file, { optional: source === 'auto' });
    if (config) {
      const recommended = Object.fromEntries(
        SAMPLING_DEFAULT_FIELDS.filter(
          (f) => config[f] != null && config[f] !== TRANSFORMERS_DEFAULTS[f],
        ).map((f) => [f, config[f]]),
      );
      fromFile = samplingDefaults(recommended, (field, why) => new ModelFormatError(file, `${field} ${why}`));
    }
  }
  return { ...fromFile, ...samplingDefaults(overrides, (field, why) => new Error(`${field} ${why}`)) };
}

/**
 * --override-generation-config's object checked: only the fields vLLM takes as sampling defaults,
 * each a value a request could give. Returns why not, or null.
 */
export function checkSamplingOverrides(overrides: Readonly<Record<string, unknown>>): string | null {
  const unknown = Object.keys(overrides).find(
    (k) => !(SAMPLING_DEFAULT_FIELDS as readonly string[]).includes(k),
  );
  if (unknown !== undefined)
    return `"${unknown}" is not a sampling default Loom takes (${SAMPLING_DEFAULT_FIELDS.join(', ')})`;
  try {
    samplingDefaults(overrides, (field, why) => new Error(`"${field}" ${why}`));
  } catch (err) {
    return (err as Error).message;
  }
  return null;
}

/** The fields as SamplingDefaults, each checked as vLLM's SamplingParams checks a request's. */
function samplingDefaults(
  fields: Readonly<Record<string, unknown>>,
  fail: (field: string, why: string) => Error,
): SamplingDefaults {
  const number = (field: string, ok: (v: number) => boolean, range: string): number | undefined => {
    const v = fields[field];
    if (v == null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
      throw fail(field, `must be ${range}, got ${JSON.stringify(v)}`);
    return v;
  };
  const out: SamplingDefaults = {};
  const temperature = number('temperature', (v) => v >= 0, 'a number ≥ 0');
  const topP = number('top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const topK = number('top_k', (v) => Number.isInteger(v) && v >= -1, 'an integer ≥ -1 (-1 or 0: off)');
  const minP = number('min_p', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  const repetitionPenalty = number('repetition_penalty', (v) => v > 0, 'a number > 0');
  const maxTokens = number('max_new_tokens', (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (temperature !== undefined) out.temperature = temperature;
  if (topP !== undefined) out.topP = topP;
  if (topK !== undefined) out.topK = Math.max(topK, 0);
  if (minP !== undefined) out.minP = minP;
  if (repetitionPenalty !== undefined) out.repetitionPenalty = repetitionPenalty;
  if (maxTokens !== undefined) out.maxTokens = maxTokens;
  return out;
}
