import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../model/load-adapter.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { readSafetensors } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const config = syntheticConfig(TINY_SPEC);
const spec = {
  name: 'ad',
  rank: 4,
  alpha: 8,
  targetModules: ['q_proj' as const, 'down_proj' as const],
  seed: 9,
};
const root = tempDirForFile('loom-adapter-');

async function adapterError(dir: string): Promise<ModelFormatError> {
  const err = await loadAdapter('x', dir, config).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  return err as ModelFormatError;
}

async function editConfig(dir: string, patch: Record<string, unknown>): Promise<void> {
  const file = join(dir, 'adapter_config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...patch }));
}

/** Rewrites adapter_model.safetensors with renamed or reshaped tensors. */
async function editTensors(
  dir: string,
  edit: (
    name: string,
    shape: number[],
    data: Float32Array,
  ) => { name: string; shape: number[]; data: Float32Array } | null,
): Promise<void> {
  const file = join(dir, 'adapter_model.safetensors');
  const tensors = [];
  for (const [name, t] of await readSafetensors(file)) {
    const out = edit(name, t.shape, t.data);
    if (out) tensors.push({ ...out, dtype: 'F32' as const });
  }
  await writeSafetensors(file, tensors);
}

describe('loadAdapter', () => {
  it('reads back what writeSyntheticAdapter wrote, with the PEFT scale', async () => {
    const dir = join(root(), 'roundtrip');
    const written = await writeSyntheticAdapter(dir, config, spec);
    const loaded = await loadAdapter('my-adapter', dir, config);
    expect(loaded).toMatchObject({ name: 'my-adapter', path: dir, rank: 4, alpha: 8 });
    expect(loaded.layers[0].q_proj).toMatchObject({ rank: 4, scale: 2 });
    expect(loaded.targetModules).toEqual(['q_proj', 'down_proj']);
    expect(loaded.layers[1].down_proj).toEqual(written.layers[1].down_proj);
    expect(loaded.layers[0].k_proj).toBeUndefined();
    const peft = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(peft).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, use_rslora: false });
  });

  it('uses alpha / sqrt(r) with rsLoRA', async () => {
    const dir = join(root(), 'rslora');
    await writeSyntheticAdapter(dir, config, { ...spec, rank: 16, alpha: 8, useRslora: true });
    expect((await loadAdapter('r', dir, config)).layers[0].q_proj!.scale).toBe(2);
  });

  it('reads F16 and BF16 adapter weights', async () => {
    const dir = join(root(), 'half');
    const written = await writeSyntheticAdapter(dir, config, spec);
    const file = join(dir, 'adapter_model.safetensors');
    const tensors = [...(await readSafetensors(file))].map(([name, t], i) => ({
      name,
      dtype: i % 2 ? ('BF16' as const) : ('F16' as const),
      shape: t.shape,
      data: t.data,
    }));
    await writeSafetensors(file, tensors);
    const loaded = await loadAdapter('h', dir, config);
    const a = loaded.layers[0].q_proj!.a;
    const expected = written.layers[0].q_proj!.a;
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - expected[i])).toBeLessThan(1e-3);
  });

  it('accepts names without .weight and with an adapter-name segment', async () => {
    for (const variant of ['bare', 'named']) {
      const dir = join(root(), variant);
      const written = await writeSyntheticAdapter(dir, config, spec);
      await editTensors(dir, (name, shape, data) => {
        const stem = name.slice(0, -'.weight'.length);
        const renamed = variant === 'bare' ? stem : stem.replace(/\.lora_([AB])$/, '.lora_$1.default.weight');
        return { name: renamed, shape, data };
      });
      const loaded = await loadAdapter('v', dir, config);
      expect(loaded.layers[0].q_proj).toEqual(written.layers[0].q_proj);
    }
  });

  it('accepts target_modules "all-linear" and layers_to_transform', async () => {
    const dir = join(root(), 'all-linear');
    const all = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
    await writeSyntheticAdapter(dir, config, { ...spec, targetModules: [...all] });
    await editConfig(dir, { target_modules: 'all-linear' });
    expect((await loadAdapter('a', dir, config)).targetModules).toEqual(all);

    await editConfig(dir, {
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      layers_to_transform: [1],
    });
    await editTensors(dir, (name, shape, data) =>
      name.includes('layers.0.') ? null : { name, shape, data },
    );
    const limited = await loadAdapter('a', dir, config);
    expect(limited.layers[0]).toEqual({});
    expect(Object.keys(limited.layers[1])).toHaveLength(7);
  });

  it('rejects a shape that does not fit the base model, naming file, tensor and shapes', async () => {
    const dir = join(root(), 'bad-shape');
    await writeSyntheticAdapter(dir, config, spec);
    const otherBase = syntheticConfig({ ...TINY_SPEC, hiddenSize: 32 });
    const err = await loadAdapter('x', dir, otherBase).then(
      () => null,
      (e: unknown) => e as ModelFormatError,
    );
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err!.message).toBe(
      `${join(dir, 'adapter_model.safetensors')}: tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [4, 64] but the base model and r=4 need [4, 32]`,
    );
  });

  it('rejects a rank that disagrees with r', async () => {
    const dir = join(root(), 'bad-rank');
    await writeSyntheticAdapter(dir, config, spec);
    await editConfig(dir, { r: 8 });
    expect((await adapterError(dir)).problem).toMatch(
      /has shape \[4, 64\] but the base model and r=8 need \[8, 64\]/,
    );
  });

  it('rejects unsupported target modules and PEFT options clearly', async () => {
    const dir = join(root(), 'options');
    await writeSyntheticAdapter(dir, config, spec);
    await editConfig(dir, { target_modules: ['q_proj', 'lm_head'] });
    const err = await adapterError(dir);
    expect(err.file).toBe(join(dir, 'adapter_config.json'));
    expect(err.problem).toMatch(/target_modules selects "lm_head", which Loom cannot adapt/);
    await editConfig(dir, { target_modules: ['q_proj', 'down_proj'], rank_pattern: { q_proj: 0 } });
    expect((await adapterError(dir)).problem).toMatch(
      /"rank_pattern" entry "q_proj": a rank must be a positive integer, got 0/,
    );
    await editConfig(dir, { rank_pattern: {}, alpha_pattern: { 'q_proj(': 8 } });
    expect((await adapterError(dir)).problem).toMatch(/"alpha_pattern" key "q_proj\(" is not a usable regex/);
    await editConfig(dir, { alpha_pattern: ['q_proj'] });
    expect((await adapterError(dir)).problem).toMatch(
      /"alpha_pattern" must be an object of module-name patterns/,
    );
    await editConfig(dir, { alpha_pattern: {}, use_dora: true });
    expect((await adapterError(dir)).problem).toMatch(/"use_dora" is set/);
  });

  it('rejects LoRA tensors for modules Loom does not adapt', async () => {
    const dir = join(root(), 'embed');
    await writeSyntheticAdapter(dir, config, spec);
    const file = join(dir, 'adapter_model.safetensors');
    const tensors = [...(await readSafetensors(file))].map(([name, t]) => ({
      name,
      dtype: 'F32' as const,
      shape: t.shape,
      data: t.data,
    }));
    tensors.push({
      name: 'base_model.model.lm_head.lora_A.weight',
      dtype: 'F32',
      shape: [4, 64],
      data: new Float32Array(256),
    });
    await writeSafetensors(file, tensors);
    expect((await adapterError(dir)).problem).toMatch(
      /"base_model.model.lm_head.lora_A.weight" is not a LoRA A\/B matrix/,
    );
  });

  it('names a missing lora_B', async () => {
    const dir = join(root(), 'missing-b');
    await writeSyntheticAdapter(dir, config, spec);
    await editTensors(dir, (name, shape, data) =>
      name.endsWith('layers.1.mlp.down_proj.lora_B.weight') ? null : { name, shape, data },
    );
    expect((await adapterError(dir)).problem).toBe(
      'tensor "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" is missing',
    );
  });

  it('supports only safetensors weights', async () => {
    const dir = join(root(), 'bin');
    await writeSyntheticAdapter(dir, config, spec);
    await rm(join(dir, 'adapter_model.safetensors'));
    await writeFile(join(dir, 'adapter_model.bin'), 'pickle');
    const err = await adapterError(dir);
    expect(err.file).toBe(join(dir, 'adapter_model.bin'));
    expect(err.problem).toMatch(/only adapter_model.safetensors is supported/);
  });

  it("refuses vLLM's extra-vocabulary embeddings by name rather than serving without them", async () => {
    for (const file of ['new_embeddings.safetensors', 'new_embeddings.bin']) {
      const dir = join(root(), `extra-vocab-${file}`);
      await writeSyntheticAdapter(dir, config, spec);
      await writeFile(join(dir, file), 'embeddings');
      const err = await adapterError(dir);
      expect(err.file).toBe(join(dir, file));
      expect(err.problem).toMatch(/adds tokens to the vocabulary/);
    }
  });

  it('names a missing directory and config', async () => {
    expect((await adapterError(join(root(), 'none'))).problem).toBe('adapter directory does not exist');
    const dir = join(root(), 'no-config');
    await writeSyntheticAdapter(dir, config, spec);
    await rm(join(dir, 'adapter_config.json'));
    expect((await adapterError(dir)).problem).toMatch(/is missing/);
  });
});
