import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterError } from '../memory/adapter-registry.js';
import {
  MAJORITY_SIGN_METHODS,
  type MajoritySignMethod,
  MERGE_STRATEGIES,
  type MergeStrategy,
  writeMergedAdapter,
} from '../model/adapter-merge.js';
import { resolveAdapterSource } from './adapter-source.js';
import { echoed, invalidRequest, serviceUnavailable } from './api-error.js';
import { namesBaseModel, type ServingStack } from './serving-stack.js';

/** LoRAX's `merged_adapters` request field. */
export interface MergedAdaptersBody {
  ids: string[];
  weights: number[];
  merge_strategy?: string | null;
  density?: number | null;
  majority_sign_method?: string | null;
}

/**
 * Merged adapters one server keeps registered at once: past it, the least recently asked for is
 * unloaded (its requests in flight finish) and its files removed once it is gone.
 */
export const MAX_MERGED_ADAPTERS = 32;

/**
 * Where merged adapters' files are written: this process's folder of the machine's temporary
 * directory, removed when the process exits (merges are made again from their sources).
 */
const MERGED_DIR = join(tmpdir(), 'loom-merged-adapters', String(process.pid));
let removesOnExit = false;

function mergedFolder(name: string): string {
  if (!removesOnExit) {
    removesOnExit = true;
    process.once('exit', () => rmSync(MERGED_DIR, { recursive: true, force: true }));
  }
  // A folder of its own each time: one being unloaded may still be read by its last requests.
  return join(MERGED_DIR, `${name}-${Date.now()}`);
}

/** One server's merged adapters: most recently used last, merges under way, ones unloading, their folders. */
interface MergedState {
  recent: string[];
  pending: Map<string, Promise<string>>;
  unloading: Set<string>;
  dirs: Map<string, string>;
}
const stateOf = new WeakMap<ServingStack, MergedState>();

function checked(body: MergedAdaptersBody): {
  strategy: MergeStrategy;
  density: number;
  method: MajoritySignMethod;
} {
  if (body.ids.length === 0)
    throw invalidRequest('merged_adapters.ids cannot be empty.', 'merged_adapters.ids');
  if (body.weights.length !== body.ids.length)
    throw invalidRequest(
      `merged_adapters.ids and merged_adapters.weights must have the same length (${body.ids.length} and ${body.weights.length}).`,
      'merged_adapters.weights',
    );
  const strategy = body.merge_strategy ?? 'linear';
  if (!(MERGE_STRATEGIES as readonly string[]).includes(strategy))
    throw invalidRequest(
      `merged_adapters.merge_strategy must be one of ${MERGE_STRATEGIES.join(', ')}; got ${echoed(strategy)}.`,
      'merged_adapters.merge_strategy',
    );
  const method = body.majority_sign_method ?? 'total';
  if (!(MAJORITY_SIGN_METHODS as readonly string[]).includes(method))
    throw invalidRequest(
      `merged_adapters.majority_sign_method must be one of ${MAJORITY_SIGN_METHODS.join(', ')}; got ${echoed(method)}.`,
      'merged_adapters.majority_sign_method',
    );
  const density = body.density ?? 0;
  if (!(density >= 0 && density <= 1))
    throw invalidRequest('merged_adapters.density must be >= 0.0 and <= 1.0.', 'merged_adapters.density');
  // PEFT divides DARE's kept values by the density: at 0 every value is 0/0.
  if (strategy.startsWith('dare_') && density === 0)
    throw invalidRequest(
      `merged_adapters.density must be above 0.0 for ${strategy} (DARE divides the values it keeps by the density).`,
      'merged_adapters.density',
    );
  return { strategy: strategy as MergeStrategy, density, method: method as MajoritySignMethod };
}

/**
 * LoRAX's `merged_adapters`: the adapters `ids` (each found by `source`, as adapter_id would be)
 * merged with their weights, as LoRAX merges them (model/adapter-merge.ts), into an adapter
 * registered under a name made from what was merged, so the same merge asked again is served at
 * once. Returns that name.
 */
export async function mergedAdapter(
  stack: ServingStack,
  body: MergedAdaptersBody,
  source: string,
): Promise<string> {
  const { strategy, density, method } = checked(body);
  const names: string[] = [];
  for (const id of body.ids) {
    if (namesBaseModel(stack, id) || id === '__base_model__')
      throw invalidRequest(
        `merged_adapters.ids names the base model (${echoed(id)}): only adapters merge.`,
        'merged_adapters.ids',
      );
    names.push(
      await resolveAdapterSource(stack, id, source, { id: 'merged_adapters.ids', source: 'adapter_source' }),
    );
  }
  const listed = new Map(stack.scheduler.adapters.list().map((a) => [a.name, a.path]));
  const dirs = names.map((n) => {
    const dir = listed.get(n);
    if (dir === undefined) throw new AdapterError(`adapter "${n}" is not loaded`, 'not_found');
    return dir;
  });
  const merge = { weights: body.weights, strategy, density, majoritySignMethod: method };
  const key = JSON.stringify({ dirs, ...merge });
  // DARE's drops are drawn from the merge itself: asked again, it is the same adapter.
  const spec = { ...merge, dropKey: key };
  const name = `merged-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
  let state = stateOf.get(stack);
  if (!state) {
    state = { recent: [], pending: new Map(), unloading: new Set(), dirs: new Map() };
    stateOf.set(stack, state);
  }
  const s = state;
  s.recent = [...s.recent.filter((n) => n !== name), name];
  if (await stack.scheduler.adapters.resolve(name)) return name;
  // Retired for the cap a moment ago, its last requests still running: it can be made again after.
  if (s.unloading.has(name))
    throw serviceUnavailable(
      'adapter_unloading',
      `The merged adapter ${name} is being unloaded (more than ${MAX_MERGED_ADAPTERS} merges were asked for); retry shortly.`,
      1,
    );
  let pending = s.pending.get(name);
  if (!pending) {
    pending = (async () => {
      const dir = mergedFolder(name);
      await writeMergedAdapter(dirs, spec, dir);
      s.dirs.set(name, dir);
      await stack.scheduler.adapters.load(name, dir, false);
      await retireOldest(stack, s);
      return name;
    })().finally(() => s.pending.delete(name));
    s.pending.set(name, pending);
  }
  return pending;
}

/** Past MAX_MERGED_ADAPTERS, unloads the least recently asked; removes the files of ones gone. */
async function retireOldest(stack: ServingStack, s: MergedState): Promise<void> {
  const admin = stack.scheduler.adapters;
  const registered = new Set(admin.list().map((a) => a.name));
  s.recent = s.recent.filter((n) => registered.has(n) && !s.unloading.has(n));
  while (s.recent.length > MAX_MERGED_ADAPTERS) {
    const oldest = s.recent.shift()!;
    admin.unload(oldest);
    s.unloading.add(oldest);
  }
  for (const n of s.unloading) {
    if (admin.list().some((a) => a.name === n)) continue;
    s.unloading.delete(n);
    const dir = s.dirs.get(n);
    s.dirs.delete(n);
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** Removes the files of a server's merged adapters (when its app closes: nothing reads them after). */
export async function removeMergedAdapters(stack: ServingStack): Promise<void> {
  const s = stateOf.get(stack);
  if (!s) return;
  stateOf.delete(stack);
  await Promise.all([...s.dirs.values()].map((dir) => rm(dir, { recursive: true, force: true })));
  // The process's folder too, once no other server of it keeps merges there.
  await rmdir(MERGED_DIR).catch(() => {});
}
