import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildServingStack, type StackOptions } from '../../server/serving-stack.js';
import { useTinyModel } from './tiny-server.js';

/** --cache-packed-weights as the server passes it down: the log says what the cache did. */
const model = useTinyModel();
const originalCacheHome = process.env.XDG_CACHE_HOME;
const folders: string[] = [];

afterEach(async () => {
  if (originalCacheHome === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = originalCacheHome;
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

async function startAndLog(cachePackedWeights: boolean, overrides: Partial<StackOptions> = {}) {
  const lines: string[] = [];
  const stack = await buildServingStack(
    {
      modelDir: model.modelDir,
      loraModules: [],
      servedModelName: null,
      maxModelLen: 128,
      maxNumSeqs: 2,
      maxNumBatchedTokens: 64,
      engine: 'onnx',
      poolSize: '8MiB',
      chatTemplateFile: null,
      seed: null,
      cachePackedWeights,
      ...overrides,
    },
    { info: (_fields, message) => lines.push(message) },
  );
  await stack.close();
  return lines;
}

describe('--cache-packed-weights', () => {
  it('saves the packed session at the first start and maps it at the next; off, nothing is written', async () => {
    const cacheHome = await mkdtemp(join(tmpdir(), 'loom-packed-flag-'));
    folders.push(cacheHome);
    process.env.XDG_CACHE_HOME = cacheHome;

    expect((await startAndLog(false)).filter((l) => l.startsWith('packed weights'))).toEqual([]);
    expect(await readdir(cacheHome)).toEqual([]);

    const first = await startAndLog(true);
    expect(first.filter((l) => l.startsWith('packed weights saved to '))).toHaveLength(1);
    const second = await startAndLog(true);
    expect(second.filter((l) => l.startsWith('packed weights mapped from '))).toHaveLength(1);
    const slots = await readdir(join(cacheHome, 'loom'));
    expect(slots).toHaveLength(1);
    expect(slots[0]).toMatch(/^packed-f32-[0-9a-f]{24}$/);
  });

  it('says where it does nothing: engines that pack nothing, weights fed to every run', async () => {
    const cacheHome = await mkdtemp(join(tmpdir(), 'loom-packed-flag-'));
    folders.push(cacheHome);
    process.env.XDG_CACHE_HOME = cacheHome;
    expect(await startAndLog(true, { engine: 'reference' })).toContain(
      '--cache-packed-weights: the reference engine packs no weights; the flag is for the onnx engine',
    );
    expect(await startAndLog(true, { loraMode: 'merged' })).toContain(
      'packed weights not cached: the weights are fed to every run (--lora-mode merged), so nothing is packed',
    );
    expect(await readdir(cacheHome)).toEqual([]);
  });
});
