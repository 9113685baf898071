import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../model/model-format-error.js';
import { parsePeftConfig } from '../../model/peft-config.js';
import { ModulePattern } from '../../model/peft-patterns.js';
import { syntheticConfig, TINY_SPEC } from '../../model/synthetic.js';

/** A rank_pattern of `keys` (in this order, values 1, 2, …), as adapter_config.json gives it. */
function pattern(keys: string[]): ModulePattern {
  return ModulePattern.parse(
    'adapter_config.json',
    'rank_pattern',
    Object.fromEntries(keys.map((key, i) => [key, i + 1])),
    () => null,
  );
}

/** The key PEFT's get_pattern_key picks for `name`, or null where none matches (the default applies). */
function pickedKey(keys: string[], name: string): string | null {
  const value = pattern(keys).valueFor(name);
  return value === undefined ? null : keys[value - 1];
}

/**
 * Cases of PEFT's `get_pattern_key` (`re.match(rf"(.*\.)?({key})$", name)`, first key in file
 * order), each checked against CPython's `re` when written: [keys, module name, key picked].
 * The first is the example of LoraConfig's docstring.
 */
const CASES: Array<[string[], string, string | null]> = [
  [
    ['^model.decoder.layers.0.encoder_attn.k_proj'],
    'model.decoder.layers.0.encoder_attn.k_proj',
    '^model.decoder.layers.0.encoder_attn.k_proj',
  ],
  [['^model.decoder.layers.0.encoder_attn.k_proj'], 'model.decoder.layers.0.self_attn.k_proj', null],
  // "^" anchors at the name's start: a longer prefix cannot be absorbed by "(.*\.)?".
  [['^model.layers.0.self_attn.q_proj'], 'base_model.model.model.layers.0.self_attn.q_proj', null],
  // A short key matches that module in every layer, never another module.
  [['q_proj'], 'model.layers.0.self_attn.q_proj', 'q_proj'],
  [['q_proj'], 'model.layers.0.self_attn.k_proj', null],
  [['self_attn.q_proj'], 'model.layers.3.self_attn.q_proj', 'self_attn.q_proj'],
  // Keys match whole dotted segments up to the end of the name.
  [['proj'], 'model.layers.0.self_attn.q_proj', null],
  [['mlp'], 'model.layers.0.mlp.down_proj', null],
  // A full key names one layer's module: not layer 11, not another module.
  [['model.layers.1.mlp.down_proj'], 'model.layers.1.mlp.down_proj', 'model.layers.1.mlp.down_proj'],
  [['model.layers.1.mlp.down_proj'], 'model.layers.11.mlp.down_proj', null],
  [['model.layers.1.mlp.down_proj'], 'model.layers.1.mlp.up_proj', null],
  [['1.mlp.down_proj'], 'model.layers.1.mlp.down_proj', '1.mlp.down_proj'],
  [['1.mlp.down_proj'], 'model.layers.11.mlp.down_proj', null],
  // Keys are regexes, grouped as a whole (an alternation does not escape the dot boundary).
  [['layers\\.(0|1)\\..*_proj'], 'model.layers.0.mlp.up_proj', 'layers\\.(0|1)\\..*_proj'],
  [['layers\\.(0|1)\\..*_proj'], 'model.layers.2.mlp.up_proj', null],
  [['q_proj|v_proj'], 'model.layers.0.self_attn.v_proj', 'q_proj|v_proj'],
  [['q_proj|v_proj'], 'model.layers.0.self_attn.xq_proj', null],
  // The first matching key in the file's order wins.
  [['q_proj', '.*'], 'model.layers.0.self_attn.q_proj', 'q_proj'],
  [['.*', 'q_proj'], 'model.layers.0.self_attn.q_proj', '.*'],
  [['q_proj', '.*'], 'model.layers.0.self_attn.k_proj', '.*'],
];

describe("rank_pattern / alpha_pattern keys match as PEFT's get_pattern_key", () => {
  it.each(CASES)('%j on %s picks %s', (keys, name, expected) => {
    expect(pickedKey(keys, name)).toBe(expected);
  });
});

describe('parsePeftConfig per-module rank and scale', () => {
  const config = syntheticConfig(TINY_SPEC);
  const base = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj', 'down_proj'] };

  it('applies rank_pattern and alpha_pattern independently, each with its own first match', () => {
    const peft = parsePeftConfig(
      'adapter_config.json',
      {
        ...base,
        rank_pattern: { 'model.layers.1.mlp.down_proj': 16, q_proj: 4 },
        alpha_pattern: { 'layers\\.0\\..*': 2, v_proj: 64 },
      },
      config,
    );
    expect(peft.moduleLora(0, 'q_proj')).toEqual({ rank: 4, alpha: 2, scale: 0.5 });
    expect(peft.moduleLora(1, 'q_proj')).toEqual({ rank: 4, alpha: 16, scale: 4 });
    expect(peft.moduleLora(0, 'v_proj')).toEqual({ rank: 8, alpha: 2, scale: 0.25 });
    expect(peft.moduleLora(1, 'v_proj')).toEqual({ rank: 8, alpha: 64, scale: 8 });
    expect(peft.moduleLora(0, 'down_proj')).toEqual({ rank: 8, alpha: 2, scale: 0.25 });
    expect(peft.moduleLora(1, 'down_proj')).toEqual({ rank: 16, alpha: 16, scale: 1 });
  });

  it('divides by sqrt(rank) of the module with rsLoRA', () => {
    const peft = parsePeftConfig(
      'adapter_config.json',
      { ...base, use_rslora: true, rank_pattern: { v_proj: 4 }, alpha_pattern: { v_proj: 6 } },
      config,
    );
    expect(peft.moduleLora(0, 'v_proj')).toEqual({ rank: 4, alpha: 6, scale: 3 });
    expect(peft.moduleLora(0, 'q_proj').scale).toBeCloseTo(16 / Math.sqrt(8), 12);
  });

  it.each([
    [
      { rank_pattern: { q_proj: 2.5 } },
      /"rank_pattern" entry "q_proj": a rank must be a positive integer, got 2.5/,
    ],
    [{ rank_pattern: { q_proj: -1 } }, /a rank must be a positive integer, got -1/],
    [
      { alpha_pattern: { q_proj: '8' } },
      /"alpha_pattern" entry "q_proj": an alpha must be a number, got "8"/,
    ],
    [{ rank_pattern: { '(?=q)proj': 4 } }, /"rank_pattern" key "\(\?=q\)proj" is not a usable regex/],
    [{ rank_pattern: 'q_proj' }, /"rank_pattern" must be an object of module-name patterns/],
  ])('refuses %j by name', (patch, message) => {
    let error: unknown;
    try {
      parsePeftConfig('adapter_config.json', { ...base, ...patch }, config);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as ModelFormatError).problem).toMatch(message);
  });
});
