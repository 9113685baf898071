import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { isTargetModule, type TargetModule } from '../../model/llama-modules.js';
import { type LoraAdapter, type LoraPair, loraScale } from '../../model/lora-adapter.js';
import { assembleWeights } from '../../model/model-tensors.js';
import { maxAbsDiff, referenceHarness, rowOf } from './reference-harness.js';

/**
 * Pinned data from reference-hf-fixture.py: a tiny Llama (4 query heads on 2 KV heads, head_dim
 * 8 with heads·head_dim ≠ hidden, llama3 RoPE scaling, two layers, one token per KV page) and an
 * rsLoRA adapter on five modules, with the logits a numpy transcription of
 * Hugging Face's LlamaForCausalLM + PEFT gives. Nothing in that script is shared with the
 * reference engine, so agreement checks the HF conventions themselves, not just consistency.
 */
interface EncodedTensor {
  shape: number[];
  f32le: string;
}
interface Fixture {
  config: Record<string, unknown>;
  adapterConfig: { r: number; lora_alpha: number; use_rslora: boolean; target_modules: string[] };
  tokens: number[];
  weights: Record<string, EncodedTensor>;
  adapter: Record<string, EncodedTensor>;
  expected: { base: EncodedTensor; lora: EncodedTensor };
}

const fixture = JSON.parse(
  readFileSync(new URL('./reference-hf-fixture.json', import.meta.url), 'utf8'),
) as Fixture;

function decode(t: EncodedTensor): Float32Array {
  const bytes = Buffer.from(t.f32le, 'base64');
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

const config = parseLlamaConfig(fixture.config);
const weights = assembleWeights(config, (name) => decode(fixture.weights[name]));

function fixtureAdapter(): LoraAdapter {
  const { r, lora_alpha, use_rslora, target_modules } = fixture.adapterConfig;
  const targetModules = target_modules.filter(isTargetModule);
  const layers = Array.from({ length: config.numLayers }, (_, l) => {
    const layer: Partial<Record<TargetModule, LoraPair>> = {};
    for (const m of targetModules) {
      const group = ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn';
      const prefix = `base_model.model.model.layers.${l}.${group}.${m}`;
      layer[m] = {
        a: decode(fixture.adapter[`${prefix}.lora_A.weight`]),
        b: decode(fixture.adapter[`${prefix}.lora_B.weight`]),
        rank: r,
        scale: loraScale(r, lora_alpha, use_rslora),
      };
    }
    return layer;
  });
  return {
    name: 'fixture',
    path: 'reference-hf-fixture.json',
    rank: r,
    alpha: lora_alpha,
    targetModules,
    layers,
  };
}

describe('reference engine against a Hugging Face transcription (pinned fixture)', () => {
  it('base and rsLoRA sequences batched together match HF logits at prefill and each decode step', async () => {
    const h = referenceHarness(weights, 256, 7);
    const lora = h.load(fixtureAdapter());
    const expectedBase = decode(fixture.expected.base);
    const expectedLora = decode(fixture.expected.lora);
    const tokens = fixture.tokens;
    const vocab = config.vocabSize;
    const prefill = 5;

    const first = await h.engine.step({
      sequences: [
        h.sequenceStep(1, tokens.slice(0, prefill), 0, lora, 'all'),
        h.sequenceStep(2, tokens.slice(0, prefill), 0, null, 'all'),
      ],
    });
    expect(
      maxAbsDiff(first.subarray(0, prefill * vocab), expectedLora.subarray(0, prefill * vocab)),
    ).toBeLessThan(5e-5);
    expect(
      maxAbsDiff(first.subarray(prefill * vocab), expectedBase.subarray(0, prefill * vocab)),
    ).toBeLessThan(5e-5);

    for (let pos = prefill; pos < tokens.length; pos++) {
      const step = await h.engine.step({
        sequences: [
          h.sequenceStep(2, [tokens[pos]], pos, null, 'last'),
          h.sequenceStep(1, [tokens[pos]], pos, lora, 'last'),
        ],
      });
      expect(maxAbsDiff(rowOf(step, 0, vocab), rowOf(expectedBase, pos, vocab))).toBeLessThan(5e-5);
      expect(maxAbsDiff(rowOf(step, 1, vocab), rowOf(expectedLora, pos, vocab))).toBeLessThan(5e-5);
    }
    // The adapter must move the logits well beyond the tolerance for the check to mean anything.
    expect(maxAbsDiff(expectedBase, expectedLora)).toBeGreaterThan(0.5);
  });
});
