import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MODEL_ROOT,
  DEMO_ADAPTER_NAMES,
  defaultModelPaths,
  verifyDefaultModel,
} from '../../model/default-model.js';
import { loadAdapter } from '../../model/load-adapter.js';
import { loadModel } from '../../model/load-model.js';
import { SafetensorsFile } from '../../model/safetensors.js';
import { StartupError } from '../../model/startup-error.js';
import { readGolden } from '../kernels/default-model-golden.js';
import { tempDirForFile } from './temp-dir.js';

const copies = tempDirForFile('loom-default-model-');

async function copyOfDefaultModel(name: string): Promise<string> {
  const root = join(copies(), name);
  await cp(DEFAULT_MODEL_ROOT, root, { recursive: true });
  return root;
}

async function refusal(root: string): Promise<string> {
  const error = await verifyDefaultModel(root).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StartupError);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('the embedded default model', () => {
  it('passes its checksums and loads: a GQA Llama with a byte-level BPE tokenizer and a chat template', async () => {
    const paths = await verifyDefaultModel();
    expect(paths).toEqual(defaultModelPaths());
    const model = await loadModel(paths.modelDir);
    expect(model.name).toBe('loom-default');
    expect(model.config).toMatchObject({
      numHeads: 4,
      numKvHeads: 2,
      vocabSize: 4096,
      tieWordEmbeddings: true,
    });
    expect(model.tokenizer.hasChatTemplate).toBe(true);
    const text = 'And the LORD said unto Moses, “café” 1234!\n';
    expect(model.tokenizer.decode(model.tokenizer.encode(text))).toBe(text);
    // Merges are real: common words are one token, not one per byte.
    expect(model.tokenizer.encode(' the LORD', false).length).toBeLessThanOrEqual(2);
  });

  it("encodes the golden prompts to the training script's ids (completions with BOS, chat by the template)", async () => {
    const { tokenizer } = await loadModel(defaultModelPaths().modelDir);
    for (const prompt of readGolden().prompts) {
      const ids =
        typeof prompt.prompt === 'string'
          ? tokenizer.encode(prompt.prompt)
          : tokenizer.encodeChat(prompt.prompt as { role: 'user'; content: string }[]);
      expect(ids, JSON.stringify(prompt.prompt)).toEqual(prompt.ids);
    }
  });

  it('has four demo adapters of different ranks and target modules, saved with PEFT names', async () => {
    const paths = defaultModelPaths();
    const model = await loadModel(paths.modelDir);
    expect(paths.adapters.map((a) => a.name)).toEqual([...DEMO_ADAPTER_NAMES]);
    const shapes = [];
    for (const { name, dir } of paths.adapters) {
      const adapter = await loadAdapter(name, dir, model.config);
      const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
      expect(config).toMatchObject({
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        base_model_name_or_path: 'loom-default',
      });
      shapes.push([adapter.rank, [...adapter.targetModules].sort().join(','), config.use_rslora]);
      const file = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
      try {
        for (const key of file.tensors.keys())
          expect(key).toMatch(
            /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.[a-z]+_proj\.lora_[AB]\.weight$/,
          );
      } finally {
        await file.close();
      }
    }
    expect(shapes).toEqual([
      [4, 'q_proj,v_proj', false],
      [8, 'k_proj,o_proj,q_proj,v_proj', false],
      [16, 'down_proj,gate_proj,k_proj,o_proj,q_proj,up_proj,v_proj', false],
      [32, 'down_proj,gate_proj,up_proj', true],
    ]);
  });

  it('refuses a changed weight file in one line that names it', async () => {
    const root = await copyOfDefaultModel('changed');
    const weights = join(root, 'loom-default', 'model.safetensors');
    const bytes = await readFile(weights);
    bytes[bytes.length - 1] ^= 1;
    await writeFile(weights, bytes);
    const message = await refusal(root);
    expect(message).toContain('loom-default/model.safetensors has SHA-256');
  });

  it('refuses a missing adapter file and a missing checksum list', async () => {
    const root = await copyOfDefaultModel('missing');
    await rm(join(root, 'adapters', 'jargon', 'adapter_model.safetensors'));
    expect(await refusal(root)).toContain('adapters/jargon/adapter_model.safetensors is missing');
    await rm(join(root, 'SHA256SUMS'));
    expect(await refusal(root)).toContain('SHA256SUMS: missing');
  });
});
