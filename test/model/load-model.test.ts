import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLlamaConfig } from '../../model/llama-config.js';
import { loadModel } from '../../model/load-model.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { weightTensors } from '../../model/model-tensors.js';
import { readSafetensors } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import {
  syntheticConfigJson,
  syntheticWeights,
  TINY_SPEC,
  writeSyntheticModel,
} from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const root = tempDirForFile('loom-model-');

async function loadError(dir: string): Promise<ModelFormatError> {
  const err = await loadModel(dir).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  return err as ModelFormatError;
}

/** Rewrites model.safetensors of `dir` through `edit`, which may drop, add or reshape tensors. */
async function editWeights(
  dir: string,
  edit: (t: { name: string; shape: number[]; data: Float32Array }[]) => typeof t,
): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const current = [...(await readSafetensors(file))].map(([name, t]) => ({
    name,
    shape: t.shape,
    data: t.data,
  }));
  await writeSafetensors(
    file,
    edit(current).map((t) => ({ ...t, dtype: 'F32' as const })),
  );
}

describe('loadModel', () => {
  it('reads back exactly what the generator wrote (F32, one file)', async () => {
    const dir = join(root(), 'tiny-model');
    const written = await writeSyntheticModel(dir, TINY_SPEC);
    const model = await loadModel(dir);
    expect(model.name).toBe('tiny-model');
    expect(model.dir).toBe(dir);
    expect(model.config).toEqual(written.config);
    expect(model.config.eosTokenIds).toEqual([2]);
    expect(model.weights.embedTokens).toEqual(written.embedTokens);
    expect(model.weights.layers[1].linear.o_proj).toEqual(written.layers[1].linear.o_proj);
    expect(model.weights.lmHead).toEqual(written.lmHead);
    expect(model.tokenizer.vocabSize).toBe(TINY_SPEC.vocabSize);
    expect(model.tokenizer.hasChatTemplate).toBe(true);
  });

  it('loads sharded BF16 weights through model.safetensors.index.json', async () => {
    const dir = join(root(), 'sharded');
    const spec = { ...TINY_SPEC, dtype: 'BF16' as const };
    await writeSyntheticModel(dir, spec, { shards: 2 });
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map)).size).toBe(2);
    const model = await loadModel(dir);
    const expected = weightTensors(syntheticWeights(spec));
    const loaded = weightTensors(model.weights);
    expect(loaded.map((t) => t.name)).toEqual(expected.map((t) => t.name));
    for (const [i, t] of loaded.entries()) expect(t.data).toEqual(expected[i].data);
    // --dtype auto on webgpu keeps a BF16 checkpoint in bf16 (kernels/engine-factory.ts).
    expect(model.weights.checkpointDtype).toBe('BF16');
  });

  it('names a missing shard and a tensor the shard lacks', async () => {
    const dir = join(root(), 'sharded-broken');
    await writeSyntheticModel(dir, TINY_SPEC, { shards: 2 });
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8'));
    const shards = [...new Set(Object.values(index.weight_map) as string[])];
    const otherShard = shards.find((s) => s !== index.weight_map['model.norm.weight'])!;
    index.weight_map['model.norm.weight'] = 'model-00009-of-00009.safetensors';
    await writeFile(indexFile, JSON.stringify(index));
    let err = await loadError(dir);
    expect(err.message).toBe(
      `${indexFile}: shard "model-00009-of-00009.safetensors" (holding "model.norm.weight") does not exist`,
    );
    index.weight_map['model.norm.weight'] = otherShard;
    await writeFile(indexFile, JSON.stringify(index));
    err = await loadError(dir);
    expect(err.file).toBe(join(dir, otherShard));
    expect(err.problem).toMatch(
      /tensor "model.norm.weight" is listed for this shard in model.safetensors.index.json but the shard lacks it/,
    );
  });

  it('tolerates extra tensors such as rotary inv_freq, and tied embeddings without lm_head', async () => {
    const dir = join(root(), 'tied');
    const written = await writeSyntheticModel(dir, { ...TINY_SPEC, tieWordEmbeddings: true });
    await editWeights(dir, (ts) => [
      ...ts,
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [8], data: new Float32Array(8) },
    ]);
    const model = await loadModel(dir);
    expect(model.weights.lmHead).toBe(model.weights.embedTokens);
    expect(model.weights.embedTokens).toEqual(written.embedTokens);
  });

  it('rejects linear-layer biases (e.g. Qwen2 q/k/v) instead of silently ignoring them', async () => {
    const dir = join(root(), 'bias');
    await writeSyntheticModel(dir, TINY_SPEC);
    await editWeights(dir, (ts) => [
      ...ts,
      { name: 'model.layers.0.self_attn.q_proj.bias', shape: [64], data: new Float32Array(64) },
    ]);
    expect((await loadError(dir)).problem).toBe(
      'tensor "model.layers.0.self_attn.q_proj.bias" is a linear-layer bias, which Loom\'s Llama layer does not support',
    );
  });

  it('rejects a missing tensor, naming the file and the tensor', async () => {
    const dir = join(root(), 'missing-tensor');
    await writeSyntheticModel(dir, TINY_SPEC);
    await editWeights(dir, (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    const err = await loadError(dir);
    expect(err.message).toBe(
      `${join(dir, 'model.safetensors')}: tensor "model.layers.1.mlp.up_proj.weight" is missing`,
    );
  });

  it('rejects a missing lm_head when embeddings are not tied', async () => {
    const dir = join(root(), 'no-lm-head');
    await writeSyntheticModel(dir, TINY_SPEC);
    await editWeights(dir, (ts) => ts.filter((t) => t.name !== 'lm_head.weight'));
    expect((await loadError(dir)).problem).toMatch(
      /"lm_head.weight" is missing \(config.json says tie_word_embeddings is false/,
    );
  });

  it('rejects a tensor whose shape does not match config.json', async () => {
    const dir = join(root(), 'bad-shape');
    await writeSyntheticModel(dir, TINY_SPEC);
    const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...raw, intermediate_size: 96 }));
    const err = await loadError(dir);
    expect(err.file).toBe(join(dir, 'model.safetensors'));
    expect(err.problem).toBe(
      'tensor "model.layers.0.mlp.gate_proj.weight" has shape [128, 64] but config.json implies [96, 64]',
    );
  });

  it('names the missing directory, config.json and weights', async () => {
    expect((await loadError(join(root(), 'nowhere'))).problem).toBe('model directory does not exist');
    const dir = join(root(), 'partial');
    await writeSyntheticModel(dir, TINY_SPEC);
    await rm(join(dir, 'model.safetensors'));
    expect((await loadError(dir)).problem).toMatch(
      /no weights: neither model.safetensors nor model.safetensors.index.json/,
    );
    await rm(join(dir, 'config.json'));
    expect((await loadError(dir)).message).toBe(`${join(dir, 'config.json')}: is missing`);
  });

  it('reports config.json problems as ModelFormatError', async () => {
    const dir = join(root(), 'bad-config');
    await writeSyntheticModel(dir, TINY_SPEC);
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...syntheticConfigJson(TINY_SPEC), model_type: 'gpt2' }),
    );
    const err = await loadError(dir);
    expect(err.message).toMatch(
      new RegExp(`^${join(dir, 'config.json')}: model_type "gpt2" is not a Llama-family model`),
    );
  });

  it('passes llama3 rope_scaling through to the config', async () => {
    const ropeScaling = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 256,
    };
    const config = parseLlamaConfig(syntheticConfigJson({ ...TINY_SPEC, ropeScaling }));
    expect(config.ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 256,
    });
    const dir = join(root(), 'llama3');
    await writeSyntheticModel(dir, { ...TINY_SPEC, ropeScaling });
    expect((await loadModel(dir)).config.ropeScaling).toEqual(config.ropeScaling);
  });
});

describe('--tokenizer (tokenizerDir)', () => {
  it('reads the tokenizer from its own directory, and names the missing file without it', async () => {
    const dir = join(root(), 'tokenizer-apart');
    const tokenizerDir = join(root(), 'tokenizer-only');
    await writeSyntheticModel(dir, TINY_SPEC);
    await mkdir(tokenizerDir, { recursive: true });
    for (const file of ['tokenizer.json', 'tokenizer_config.json'])
      await rename(join(dir, file), join(tokenizerDir, file)).catch(() => {});
    expect((await loadError(dir)).message).toContain(join(dir, 'tokenizer.json'));
    const model = await loadModel(dir, { tokenizerDir });
    expect(model.tokenizer.encode('hello world').length).toBeGreaterThan(0);
    await model.linearWeightsChecked;
  });
});

describe('--hf-overrides (hfOverrides)', () => {
  it("replaces config.json's keys before the config is read, and names the flag in a problem", async () => {
    const dir = join(root(), 'overridden');
    await writeSyntheticModel(dir, TINY_SPEC);
    const yarn = { rope_type: 'yarn', factor: 2, original_max_position_embeddings: 128 };
    const model = await loadModel(dir, { hfOverrides: { max_position_embeddings: 512, rope_scaling: yarn } });
    expect(model.config.maxPositionEmbeddings).toBe(512);
    expect(model.config.ropeScaling).toMatchObject({
      type: 'yarn',
      factor: 2,
      originalMaxPositionEmbeddings: 128,
    });
    await model.linearWeightsChecked;
    // The file on disk is untouched: without the overrides the model is as it was.
    const plain = await loadModel(dir);
    expect(plain.config.ropeScaling).toBeNull();
    await plain.linearWeightsChecked;
    const bad = await loadModel(dir, { hfOverrides: { hidden_act: 'gelu' } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ModelFormatError);
    expect((bad as Error).message).toMatch(/config\.json \(with --hf-overrides\): hidden_act "gelu"/);
  });
});
