import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findInAdapterFolder, listAdapterFolder } from '../../model/adapter-folder.js';
import { tempDirForFile } from './temp-dir.js';

const dir = tempDirForFile('loom-adapter-folder-');

/** An adapter folder as far as the folder scan looks: a directory with an adapter_config.json. */
async function adapter(...segments: string[]) {
  await mkdir(join(dir(), ...segments), { recursive: true });
  await writeFile(join(dir(), ...segments, 'adapter_config.json'), '{}');
}

describe('--lora-dir', () => {
  it('names adapters by their folder, and a Hub-like org/name folder by both', async () => {
    await adapter('plain');
    await adapter('predibase', 'conllpp');
    await adapter('predibase', 'magicoder');
    await adapter('org-with-adapter');
    await adapter('org-with-adapter', 'inner');
    await adapter('a', 'b', 'c');
    await adapter('.hidden');
    await mkdir(join(dir(), 'empty'));
    expect((await listAdapterFolder(dir())).map((a) => a.name)).toEqual([
      'org-with-adapter',
      'plain',
      'predibase/conllpp',
      'predibase/magicoder',
    ]);
  });

  it('finds a name added later, in one or two plain segments, and nothing that climbs out', async () => {
    await adapter('late', 'one');
    expect(await findInAdapterFolder(dir(), 'late/one')).toBe(join(dir(), 'late', 'one'));
    expect(await findInAdapterFolder(dir(), 'plain')).toBe(join(dir(), 'plain'));
    for (const name of ['a/b/c', '../plain', 'predibase/..', '.hidden', 'predibase/', '/plain', 'late'])
      expect(await findInAdapterFolder(dir(), name), name).toBeNull();
  });
});
