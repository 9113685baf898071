import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../model/load-adapter.js';
import { loadModel } from '../../model/load-model.js';
import { DEFAULT_SPEC, ensureDefaultModel } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const cacheDir = tempDirForFile('loom-cache-');

describe('ensureDefaultModel', () => {
  it('writes a loadable default model and four demo adapters once, then reuses them', async () => {
    // Leftovers of an older spec and of a start that died mid-write (pid 2^22 + 1 is never live).
    await mkdir(join(cacheDir(), 'default-000000000000', 'loom-default'), { recursive: true });
    await mkdir(join(cacheDir(), `.tmp-${2 ** 22 + 1}-1`), { recursive: true });

    const first = await ensureDefaultModel(cacheDir());
    expect(first.adapters.map((a) => a.name)).toEqual([
      'loom-demo-r4',
      'loom-demo-r8',
      'loom-demo-r16',
      'loom-demo-r64',
    ]);
    const model = await loadModel(first.modelDir);
    expect(model.name).toBe('loom-default');
    expect(model.config.hiddenSize).toBe(DEFAULT_SPEC.hiddenSize);
    expect(model.tokenizer.hasChatTemplate).toBe(true);
    const ranks = [];
    for (const a of first.adapters) ranks.push((await loadAdapter(a.name, a.dir, model.config)).rank);
    expect(ranks).toEqual([4, 8, 16, 64]);
    expect(await readdir(cacheDir())).toEqual([first.modelDir.split('/').at(-2)]);

    const written = (await stat(join(first.modelDir, 'model.safetensors'))).mtimeMs;
    const second = await ensureDefaultModel(cacheDir());
    expect(second).toEqual(first);
    expect((await stat(join(second.modelDir, 'model.safetensors'))).mtimeMs).toBe(written);
  });
});
