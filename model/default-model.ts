import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSyntheticAdapter, writeSyntheticModel } from './synthetic-files.js';
import { DEFAULT_SPEC, type SyntheticAdapterSpec, syntheticConfig } from './synthetic-spec.js';

/** Bump when the generator's output changes for the same spec, so caches regenerate. */
const GENERATOR_VERSION = 1;
const DEFAULT_MODEL_NAME = 'loom-default';
const CACHE_PREFIX = 'default-';
const STAMP_FILE = 'stamp.json';

/** The demo adapters: different ranks and target modules, so mixed batches are really mixed. */
export const DEMO_ADAPTERS: SyntheticAdapterSpec[] = [
  { name: 'loom-demo-r4', rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'], seed: 101 },
  {
    name: 'loom-demo-r8',
    rank: 8,
    alpha: 16,
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    seed: 102,
  },
  {
    name: 'loom-demo-r16',
    rank: 16,
    alpha: 32,
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    seed: 103,
  },
  {
    name: 'loom-demo-r64',
    rank: 64,
    alpha: 16,
    targetModules: ['gate_proj', 'up_proj', 'down_proj'],
    seed: 104,
    useRslora: true,
  },
];

export interface DefaultModelPaths {
  modelDir: string;
  adapters: { name: string; dir: string }[];
}

function pathsIn(root: string): DefaultModelPaths {
  return {
    modelDir: join(root, DEFAULT_MODEL_NAME),
    adapters: DEMO_ADAPTERS.map((a) => ({ name: a.name, dir: join(root, 'adapters', a.name) })),
  };
}

async function readStamp(root: string): Promise<string | null> {
  return readFile(join(root, STAMP_FILE), 'utf8').catch(() => null);
}

/**
 * Makes sure the embedded default model (DEFAULT_SPEC) and its four demo adapters exist under
 * `cacheDir`, generating them if not. The cache folder's name hashes the generator version and
 * specs, so a changed spec regenerates; it is written to a temporary folder and renamed into
 * place, so an interrupted start never leaves a half-written cache behind.
 */
export async function ensureDefaultModel(cacheDir: string): Promise<DefaultModelPaths> {
  const stamp = JSON.stringify({ version: GENERATOR_VERSION, model: DEFAULT_SPEC, adapters: DEMO_ADAPTERS });
  const hash = createHash('sha256').update(stamp).digest('hex').slice(0, 12);
  const root = join(cacheDir, `${CACHE_PREFIX}${hash}`);
  if ((await readStamp(root)) === stamp) return pathsIn(root);

  await mkdir(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.tmp-${process.pid}-${Date.now()}`);
  try {
    const paths = pathsIn(tmp);
    await writeSyntheticModel(paths.modelDir, DEFAULT_SPEC);
    const config = syntheticConfig(DEFAULT_SPEC);
    for (const [i, spec] of DEMO_ADAPTERS.entries()) {
      await writeSyntheticAdapter(paths.adapters[i].dir, config, spec, DEFAULT_MODEL_NAME);
    }
    // The stamp goes last: its presence means everything before it was written.
    await writeFile(join(tmp, STAMP_FILE), stamp);
    if ((await readStamp(root)) === stamp) {
      // Another process finished the same cache while we wrote ours, and may be reading it.
      await rm(tmp, { recursive: true, force: true });
    } else {
      await rm(root, { recursive: true, force: true });
      await rename(tmp, root);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    // Another process may have finished the same cache first; theirs is as good as ours.
    if ((await readStamp(root)) !== stamp) throw err;
  }
  await removeStaleCaches(cacheDir, root);
  return pathsIn(root);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Best effort: caches of older specs or versions are dead weight, and so are temporary folders
 * of starts that were killed mid-write (their process is gone).
 */
async function removeStaleCaches(cacheDir: string, keep: string): Promise<void> {
  const entries = await readdir(cacheDir).catch(() => [] as string[]);
  for (const entry of entries) {
    const path = join(cacheDir, entry);
    const tmpOwner = /^\.tmp-(\d+)-/.exec(entry);
    const stale =
      (entry.startsWith(CACHE_PREFIX) && path !== keep) || (tmpOwner && !isAlive(Number(tmpOwner[1])));
    if (stale) await rm(path, { recursive: true, force: true });
  }
}
