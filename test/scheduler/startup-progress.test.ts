import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSyntheticModel } from '../../model/synthetic-files.js';
import { TINY_SPEC } from '../../model/synthetic-spec.js';
import { LlmEngine } from '../../scheduler/llm-engine.js';
import { useTinyModel } from '../server/tiny-server.js';

const model = useTinyModel();

/** LlmEngine.create's structured progress lines, in order. */
async function startupLines(
  modelDir: string,
): Promise<Array<{ fields: Record<string, unknown>; msg: string }>> {
  const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const llm = await LlmEngine.create(
    {
      modelDir,
      servedModelName: null,
      loraModules: [],
      maxModelLen: 64,
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      engine: 'onnx',
      poolSize: '8MiB',
      chatTemplateFile: null,
      seed: 1,
    },
    { info: (fields, msg) => lines.push({ fields, msg }) },
  );
  await llm.close();
  return lines;
}

describe('start-up progress', () => {
  it('reports each safetensors shard read, with its size, speed and the bytes left mapped', async () => {
    const modelDir = join(model.root, 'sharded');
    await writeSyntheticModel(modelDir, TINY_SPEC, { shards: 3 });
    const lines = await startupLines(modelDir);
    const shards = lines.filter((l) => l.msg === 'weights file read and checked');
    expect(shards.map((l) => l.fields.file)).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    let mb = 0;
    for (const { fields } of shards) {
      expect(fields.tensors).toBeGreaterThan(0);
      expect(fields.seconds).toBeGreaterThanOrEqual(0);
      expect(fields.fileBackedMb).toBeLessThanOrEqual(fields.mb as number);
      mb += fields.mb as number;
      const size = (await stat(join(modelDir, fields.file as string))).size / 1e6;
      expect(fields.mb).toBeLessThanOrEqual(size + 0.001);
    }
    // F32 linear weights stay in the files: most of a Llama checkpoint's bytes.
    const mapped = shards.reduce((sum, l) => sum + (l.fields.fileBackedMb as number), 0);
    expect(mapped).toBeGreaterThan(0.5 * mb);
    const order = ['loading model', 'weights read', 'creating engine', 'engine created', 'engine ready'];
    const at = order.map((msg) => lines.findIndex((l) => l.msg === msg));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(at[1]).toBeGreaterThan(lines.indexOf(shards[2]));
  });

  it('maps nothing from an F16 checkpoint: its weights are widened into host arrays', async () => {
    const modelDir = join(model.root, 'f16');
    await writeSyntheticModel(modelDir, { ...TINY_SPEC, dtype: 'F16' });
    const shards = (await startupLines(modelDir)).filter((l) => l.msg === 'weights file read and checked');
    expect(shards).toHaveLength(1);
    expect(shards[0].fields).toMatchObject({ file: 'model.safetensors', fileBackedMb: 0 });
  });
});
