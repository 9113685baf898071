import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { contextLengthProblem, parseLlamaConfig } from '../../model/llama-config.js';
import { loadModel } from '../../model/load-model.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { readSafetensors } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import { syntheticConfigJson, TINY_SPEC, writeSyntheticModel } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const root = tempDirForFile('loom-hostile-');
const base = () => syntheticConfigJson(TINY_SPEC);

async function loadError(dir: string): Promise<ModelFormatError> {
  const err = await loadModel(dir).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  return err as ModelFormatError;
}

async function patchConfig(dir: string, patch: Record<string, unknown>): Promise<void> {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...patch }));
}

describe('config.json values', () => {
  it('refuses non-finite, zero or negative rope_theta and rms_norm_eps, naming the field', () => {
    for (const [key, value] of [
      ['rope_theta', 'NaN'],
      ['rope_theta', 0],
      ['rms_norm_eps', -1e-6],
      ['rms_norm_eps', JSON.parse('1e999') as number], // JSON's way to write Infinity
    ] as const) {
      expect(() => parseLlamaConfig({ ...base(), [key]: value }, 'm/config.json')).toThrow(
        new RegExp(`^m/config.json: "${key}" must be a finite number above 0`),
      );
    }
  });

  it('refuses sizes past 2^31 − 1 as corrupt', () => {
    expect(() => parseLlamaConfig({ ...base(), hidden_size: 2 ** 40 })).toThrow(
      /"hidden_size" must be a positive integer/,
    );
  });

  it('refuses incomplete llama3 rope_scaling as transformers does, naming the missing keys', () => {
    expect(() =>
      parseLlamaConfig({
        ...base(),
        rope_scaling: { rope_type: 'llama3', factor: 8, original_max_position_embeddings: 64 },
      }),
    ).toThrow(/rope_scaling of type "llama3" lacks low_freq_factor, high_freq_factor/);
    expect(() => parseLlamaConfig({ ...base(), rope_scaling: { type: 'linear' } })).toThrow(
      /rope_scaling of type "linear" lacks factor/,
    );
  });

  it('refuses Qwen2 and biased Llama configs, and advertises only llama and mistral', () => {
    expect(() => parseLlamaConfig({ ...base(), model_type: 'qwen2' })).toThrow(
      /q\/k\/v projections have biases/,
    );
    expect(() => parseLlamaConfig({ ...base(), attention_bias: true })).toThrow(/"attention_bias" is true/);
    expect(() => parseLlamaConfig({ ...base(), mlp_bias: true })).toThrow(/"mlp_bias" is true/);
    expect(() => parseLlamaConfig({ ...base(), model_type: 'gpt2' })).toThrow(/\(llama, mistral\)$/);
  });

  it("refuses a context longer than Mistral's sliding window, and allows one within it", () => {
    const mistral = parseLlamaConfig({ ...base(), model_type: 'mistral', sliding_window: 256 });
    expect(mistral.slidingWindow).toBe(256);
    expect(contextLengthProblem(mistral, 256)).toBeNull();
    expect(contextLengthProblem(mistral, 257)).toMatch(/^sliding_window is 256 .* \(--max-model-len 256\)$/);
    expect(
      parseLlamaConfig({ ...base(), model_type: 'mistral', sliding_window: null }).slidingWindow,
    ).toBeNull();
    // transformers' Llama ignores the key; so does Loom.
    expect(parseLlamaConfig({ ...base(), sliding_window: 16 }).slidingWindow).toBeNull();
  });
});

describe('hostile model directories', () => {
  it('checks num_hidden_layers against the checkpoint before sizing anything by it', async () => {
    const dir = join(root(), 'layers');
    await writeSyntheticModel(dir, TINY_SPEC);
    await patchConfig(dir, { num_hidden_layers: 1e9 });
    const started = Date.now();
    const err = await loadError(dir);
    expect(err.message).toBe(
      `${join(dir, 'config.json')}: num_hidden_layers is 1000000000 but ${join(dir, 'model.safetensors')} holds ${TINY_SPEC.numLayers} layers`,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses a FIFO config.json at once instead of waiting for a writer', async () => {
    const dir = join(root(), 'fifo');
    await writeSyntheticModel(dir, TINY_SPEC);
    await rm(join(dir, 'config.json'));
    execFileSync('mkfifo', [join(dir, 'config.json')]);
    expect((await loadError(dir)).message).toBe(`${join(dir, 'config.json')}: is not a regular file`);
    await rm(join(dir, 'model.safetensors'));
    execFileSync('mkfifo', [join(dir, 'model.safetensors')]);
    await rm(join(dir, 'config.json'));
    await writeFile(join(dir, 'config.json'), JSON.stringify(base()));
    expect((await loadError(dir)).message).toBe(`${join(dir, 'model.safetensors')}: is not a regular file`);
  });

  it('refuses a config file past its size bound without reading it', async () => {
    const dir = join(root(), 'huge');
    await writeSyntheticModel(dir, TINY_SPEC);
    await writeFile(join(dir, 'generation_config.json'), Buffer.alloc(17 * 1024 * 1024, 0x20));
    expect((await loadError(dir)).problem).toMatch(/^is 17825792 bytes, more than the 16777216 bytes/);
  });

  it('refuses base weights holding NaN or magnitudes that overflow f32, naming file, tensor and element', async () => {
    for (const [label, bad] of [
      ['nan', Number.NaN],
      ['huge', 3e38],
      ['inf', Number.NEGATIVE_INFINITY],
    ] as const) {
      const dir = join(root(), `poisoned-${label}`);
      await writeSyntheticModel(dir, TINY_SPEC);
      const file = join(dir, 'model.safetensors');
      const tensors = [...(await readSafetensors(file))].map(([name, t]) => ({
        name,
        shape: t.shape,
        data: t.data,
      }));
      const target = tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!;
      target.data[5] = bad;
      await writeSafetensors(
        file,
        tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
      );
      const err = await loadError(dir);
      expect(err.file).toBe(file);
      const problem =
        /^tensor "model.layers.1.mlp.up_proj.weight" holds .* at element 5; weights must be finite/;
      expect(err.problem).toMatch(problem);
      // Checked in the background (the server's way): loading returns, the check names the same weight.
      const loaded = await loadModel(dir, { linearWeightCheck: 'background' });
      const late = await loaded.linearWeightsChecked.then(
        () => null,
        (e: unknown) => e,
      );
      expect(late).toBeInstanceOf(ModelFormatError);
      expect((late as ModelFormatError).file).toBe(file);
      expect((late as ModelFormatError).problem).toMatch(problem);
    }
  });
});
