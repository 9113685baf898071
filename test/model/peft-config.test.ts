import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../model/load-adapter.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { readSafetensors } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const config = syntheticConfig(TINY_SPEC);
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const root = tempDirForFile('loom-peft-');
let count = 0;

/** A fresh PEFT directory targeting every linear layer, with adapter_config.json patched. */
async function adapterDir(patch: Record<string, unknown> = {}): Promise<string> {
  const dir = join(root(), `a${count++}`);
  await writeSyntheticAdapter(dir, config, {
    name: 'a',
    rank: 4,
    alpha: 8,
    targetModules: [...ALL],
    seed: 3,
  });
  const file = join(dir, 'adapter_config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...patch }));
  return dir;
}

/** Keeps only the tensors `keep` accepts (or rewrites them), as a PEFT save of a narrower config would. */
async function keepTensors(
  dir: string,
  keep: (name: string, data: Float32Array) => boolean,
  extra: Array<{ name: string; shape: number[]; data: Float32Array }> = [],
): Promise<void> {
  const file = join(dir, 'adapter_model.safetensors');
  const tensors = [...(await readSafetensors(file))]
    .filter(([name, t]) => keep(name, t.data))
    .map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
  await writeSafetensors(
    file,
    [...tensors, ...extra].map((t) => ({ ...t, dtype: 'F32' as const })),
  );
}

async function problem(dir: string): Promise<string> {
  const err = await loadAdapter('x', dir, config).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  return (err as ModelFormatError).problem;
}

describe('adapter_config.json methods Loom does not implement are refused by name', () => {
  it('aLoRA (alora_invocation_tokens)', async () => {
    expect(await problem(await adapterDir({ alora_invocation_tokens: [128006, 78191] }))).toMatch(
      /^"alora_invocation_tokens" is set: it makes it an activated LoRA \(aLoRA\)/,
    );
  });

  it('PiSSA, OLoRA, CorDA and LoftQ saved without conversion, telling how to convert', async () => {
    for (const init of ['pissa', 'pissa_niter_16', 'olora', 'corda', 'loftq']) {
      expect(await problem(await adapterDir({ init_lora_weights: init }))).toMatch(
        new RegExp(`^"init_lora_weights" is "${init}": PEFT rewrites the base weights .* save it converted`),
      );
    }
  });

  it('unknown methods and fields (Arrow, KaSA, anything new), while harmless fields load', async () => {
    expect(await problem(await adapterDir({ arrow_config: { top_k: 2 } }))).toMatch(
      /^"arrow_config" is set: it routes/,
    );
    expect(await problem(await adapterDir({ kasa_config: { r: 4 } }))).toMatch(/^"kasa_config" is set/);
    expect(await problem(await adapterDir({ mica_shift: 0.5 }))).toBe(
      '"mica_shift" is set, and Loom does not know what it changes',
    );
    expect(await problem(await adapterDir({ task_type: 'SEQ_CLS' }))).toMatch(
      /task_type "SEQ_CLS" is not supported/,
    );
    const harmless = await adapterDir({
      task_type: 'CAUSAL_LM',
      lora_dropout: 0.05,
      inference_mode: true,
      base_model_name_or_path: 'meta-llama/Llama-3.2-1B',
      megatron_core: 'megatron.core',
      init_lora_weights: 'gaussian',
      eva_config: null,
      use_dora: false,
      rank_pattern: {},
      peft_version: '0.17.1',
    });
    expect((await loadAdapter('ok', harmless, config)).targetModules).toEqual([...ALL]);
  });

  it('lora_bias with its true reason; rank_pattern and alpha_pattern stay refused', async () => {
    expect(await problem(await adapterDir({ lora_bias: true }))).toMatch(
      /^"lora_bias" is true: its lora_B layers carry a bias vector/,
    );
    expect(await problem(await adapterDir({ rank_pattern: { q_proj: 8 } }))).toMatch(/"rank_pattern"/);
  });
});

describe('bias "all" / "lora_only"', () => {
  it('load when the file holds no bias tensors (a base without linear biases trains none)', async () => {
    for (const bias of ['all', 'lora_only']) {
      expect((await loadAdapter('b', await adapterDir({ bias }), config)).rank).toBe(4);
    }
  });

  it('are refused when the file holds a trained bias', async () => {
    const dir = await adapterDir({ bias: 'all' });
    await keepTensors(dir, () => true, [
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.bias',
        shape: [64],
        data: new Float32Array(64),
      },
    ]);
    expect(await problem(dir)).toMatch(
      /q_proj.bias" is a trained bias \(adapter_config.json has bias "all"\)/,
    );
  });
});

describe('which modules an adapter targets, decided as PEFT decides', () => {
  it('full-key target_modules match that module only', async () => {
    const dir = await adapterDir({
      target_modules: ['model.layers.0.self_attn.q_proj', 'layers.1.mlp.down_proj'],
    });
    await keepTensors(
      dir,
      (name) => name.includes('layers.0.self_attn.q_proj') || name.includes('layers.1.mlp.down_proj'),
    );
    const adapter = await loadAdapter('k', dir, config);
    expect(adapter.targetModules).toEqual(['q_proj', 'down_proj']);
    expect(Object.keys(adapter.layers[0])).toEqual(['q_proj']);
    expect(Object.keys(adapter.layers[1])).toEqual(['down_proj']);
  });

  it('exclude_modules, as a list and as a regex', async () => {
    const listed = await adapterDir({
      target_modules: 'all-linear',
      exclude_modules: ['down_proj', 'layers.0.mlp.up_proj'],
    });
    await keepTensors(
      listed,
      (name) => !name.includes('down_proj') && !name.includes('layers.0.mlp.up_proj'),
    );
    const a = await loadAdapter('e', listed, config);
    expect(a.targetModules).not.toContain('down_proj');
    expect(a.layers[0].up_proj).toBeUndefined();
    expect(a.layers[1].up_proj).toBeDefined();

    const regex = await adapterDir({ exclude_modules: '.*\\.layers\\.1\\..*' });
    await keepTensors(regex, (name) => !name.includes('layers.1.'));
    const b = await loadAdapter('r', regex, config);
    expect(b.layers[1]).toEqual({});
    expect(Object.keys(b.layers[0])).toHaveLength(7);
  });

  it('a string target_modules is full-matched, with no catastrophic backtracking', async () => {
    const dir = await adapterDir({ target_modules: '.*\\.(q_proj|v_proj)' });
    await keepTensors(dir, (name) => name.includes('q_proj') || name.includes('v_proj'));
    expect((await loadAdapter('q', dir, config)).targetModules).toEqual(['q_proj', 'v_proj']);

    const started = performance.now();
    expect(await problem(await adapterDir({ target_modules: '(.*.*)*X' }))).toMatch(
      /selects none of the model's linear layers/,
    );
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await problem(await adapterDir({ target_modules: '(?=.*q).*' }))).toMatch(
      /target_modules regex "\(\?=\.\*q\)\.\*" cannot be used: lookaround assertions are not supported/,
    );
    expect(await problem(await adapterDir({ target_modules: '.*' }))).toMatch(
      /target_modules selects "", which Loom cannot adapt/,
    );
  });
});

describe('adapter weights', () => {
  it('are refused when they hold NaN or magnitudes that overflow f32', async () => {
    for (const bad of [Number.NaN, 3e38, Number.POSITIVE_INFINITY]) {
      const dir = await adapterDir();
      const file = join(dir, 'adapter_model.safetensors');
      const tensors = [...(await readSafetensors(file))].map(([name, t]) => ({
        name,
        shape: t.shape,
        data: t.data,
      }));
      tensors[3].data[2] = bad;
      await writeSafetensors(
        file,
        tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
      );
      expect(await problem(dir)).toMatch(
        new RegExp(
          `^tensor "${tensors[3].name.replaceAll('.', '\\.')}" holds .* at element 2; weights must be finite`,
        ),
      );
    }
  });
});
