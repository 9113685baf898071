import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdapterReader } from '../../model/adapter-reader.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { ADAPTER_WEIGHTS_FILE, loadStoredAdapter } from '../../model/load-adapter.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { tempDirForFile } from './temp-dir.js';

const config = syntheticConfig(TINY_SPEC);
const root = tempDirForFile('loom-adapter-reader-');

async function adapterDir(name: string, dtype: 'F32' | 'F16' | 'BF16'): Promise<string> {
  const dir = join(root(), name);
  await writeSyntheticAdapter(
    dir,
    config,
    { name, rank: 4, alpha: 8, targetModules: [...TARGET_MODULES], seed: name.length },
    'base',
    dtype,
  );
  return dir;
}

describe('AdapterReader', () => {
  it('reads on its worker thread what loadStoredAdapter reads here, in the file dtype', async () => {
    const reader = new AdapterReader(config);
    try {
      for (const dtype of ['F32', 'F16', 'BF16'] as const) {
        const dir = await adapterDir(`ok-${dtype}`, dtype);
        const viaWorker = await reader.read('a', dir);
        expect(reader.usesWorker).toBe(true);
        expect(viaWorker).toEqual(await loadStoredAdapter('a', dir, config));
        expect(viaWorker.layers[1].down_proj!.a.data).toBeInstanceOf(
          dtype === 'F32' ? Float32Array : Uint16Array,
        );
        // In shared memory: an engine on another thread is given it without a copy.
        expect(viaWorker.layers[1].down_proj!.a.data.buffer).toBeInstanceOf(SharedArrayBuffer);
      }
    } finally {
      await reader.close();
    }
  });

  it('gives back the same ModelFormatError as a read on this thread, and keeps reading after it', async () => {
    const dir = await adapterDir('poisoned', 'F32');
    // The last 4 bytes of the file are the last tensor's last f32 element.
    const file = await open(join(dir, ADAPTER_WEIGHTS_FILE), 'r+');
    const { size } = await file.stat();
    await file.write(new Uint8Array(new Float32Array([Number.NaN]).buffer), 0, 4, size - 4);
    await file.close();
    const here = await loadStoredAdapter('p', dir, config).catch((e: unknown) => e);
    const reader = new AdapterReader(config);
    try {
      const there = await reader.read('p', dir).catch((e: unknown) => e);
      expect(reader.usesWorker).toBe(true);
      expect(there).toBeInstanceOf(Error);
      expect(there).toMatchObject({ name: 'ModelFormatError', message: (here as Error).message });
      expect((here as Error).message).toMatch(/NaN/);
      const missing = await reader.read('m', join(root(), 'missing')).catch((e: unknown) => e);
      expect((missing as Error).message).toMatch(/adapter directory does not exist/);
      const dir2 = await adapterDir('after', 'F16');
      expect(await reader.read('b', dir2)).toEqual(await loadStoredAdapter('b', dir2, config));
    } finally {
      await reader.close();
    }
  });

  it('reads on the calling thread once closed', async () => {
    const reader = new AdapterReader(config);
    await reader.close();
    const dir = await adapterDir('closed', 'BF16');
    expect(await reader.read('c', dir)).toEqual(await loadStoredAdapter('c', dir, config));
    expect(reader.usesWorker).toBe(false);
  });
});
