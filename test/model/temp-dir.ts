import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/**
 * A fresh temporary directory for the calling test file, made before its tests and removed after
 * them. Returns a getter: the path exists only once the tests run.
 */
export function tempDirForFile(prefix: string): () => string {
  let path: string | undefined;
  beforeAll(async () => {
    path = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (path) await rm(path, { recursive: true, force: true });
  });
  return () => {
    if (!path) throw new Error(`${prefix}: the temporary directory exists only while tests run`);
    return path;
  };
}
