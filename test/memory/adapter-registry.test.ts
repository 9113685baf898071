import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdapterError } from '../../memory/adapter-registry.js';
import { PagePool } from '../../memory/page-pool.js';
import { loadAdapter, loadStoredAdapter } from '../../model/load-adapter.js';
import { widenAdapter } from '../../model/stored-adapter.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { fakeConfig } from '../scheduler/fake-engine.js';
import { FakeAdapterFiles, newRegistry } from './registry-kit.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Registers adapters a0..a{n-1} at /adapters/aN. */
async function registerMany(registry: ReturnType<typeof newRegistry>['registry'], n: number) {
  for (let i = 0; i < n; i++) await registry.register(`a${i}`, `/adapters/a${i}`);
}

/** Plans steps until `names` are resident (their reads take a macrotask). */
async function makeResident(registry: ReturnType<typeof newRegistry>['registry'], names: string[]) {
  for (let round = 0; round < 10 && !names.every((n) => registry.isResident(n)); round++) {
    registry.planStep([], names, 0);
    registry.endPlanning();
    await settle();
  }
  expect(names.filter((n) => !registry.isResident(n))).toEqual([]);
}

describe('AdapterRegistry', () => {
  it('registers thousands from their configs without reading a weight, and finds later ones lazily', async () => {
    const pool = new PagePool(200, fakeConfig.hiddenSize);
    const { registry, files } = newRegistry(pool, fakeConfig);
    await registerMany(registry, 2000);
    expect(registry.numRegistered).toBe(2000);
    expect(files.reads).toEqual([]);
    expect(pool.numUsed()).toBe(0);
    expect(new Set(registry.list().map((a) => a.tier))).toEqual(new Set(['disk']));

    expect(await registry.resolve('late')).toBe(false);
    files.lazyNames.add('late');
    expect(await registry.resolve('late')).toBe(true);
    expect(registry.has('late')).toBe(true);
  });

  it('makes adapters resident from disk through host RAM, and never evicts a pinned one', async () => {
    const pool = new PagePool(60, fakeConfig.hiddenSize);
    const { registry, storage } = newRegistry(pool, fakeConfig, { maxLoras: 10 });
    await registerMany(registry, 6);
    await makeResident(registry, ['a0', 'a1']);
    registry.pin('a0');
    expect(registry.list().find((a) => a.name === 'a0')?.tier).toBe('pool');
    storage.check(registry.layoutOf('a0')!);

    // KV wants almost everything: the idle a1 goes, the pinned a0 stays.
    const kv = pool.allocate(pool.numAvailable, 'kv');
    expect(registry.isResident('a0')).toBe(true);
    expect(registry.isResident('a1')).toBe(false);
    expect(registry.list().find((a) => a.name === 'a1')?.tier).toBe('host');
    expect(pool.canAllocate(1)).toBe(false);
    pool.free(kv);
    registry.unpin('a0');
    expect(registry.reclaimablePages()).toBe(pool.numUsed('adapter'));
  });

  it('evicts the least recently used idle adapter when --max-loras is reached, never a protected one', async () => {
    const pool = new PagePool(200, fakeConfig.hiddenSize);
    const { registry } = newRegistry(pool, fakeConfig, { maxLoras: 2 });
    await registerMany(registry, 4);
    await makeResident(registry, ['a0']);
    await makeResident(registry, ['a1']);
    registry.pin('a1');
    registry.unpin('a1'); // a1 used after a0: a0 is the least recently used
    await makeResident(registry, ['a2']);
    expect(['a0', 'a1', 'a2'].map((n) => registry.isResident(n))).toEqual([false, true, true]);
    expect(registry.counters.numEvictions).toBe(1);
    // While a plan needs a1 and a2, a3 cannot displace them.
    registry.planStep(['a1'], ['a2', 'a3'], 0);
    await settle();
    registry.planStep(['a1'], ['a2', 'a3'], 0);
    expect(registry.isResident('a3')).toBe(false);
    registry.endPlanning();
    expect(registry.numResident).toBe(2);
  });

  it('copies only the adapters a step can admit between steps; the rest while the step runs, until it ends', async () => {
    const pool = new PagePool(400, fakeConfig.hiddenSize);
    const { registry, storage } = newRegistry(pool, fakeConfig, { maxLoras: 4 });
    await registerMany(registry, 8);
    for (const name of ['a0', 'a1', 'a2', 'a3']) await makeResident(registry, [name]);
    const queue = ['a4', 'a5', 'a6', 'a7'];
    registry.planStep([], queue, 0);
    registry.endPlanning();
    // The four queued adapters are read into host RAM (two at a time); nothing fits beside a0..a3.
    for (let i = 0; i < 4 && registry.list().some((a) => a.tier === 'disk'); i++) await settle();
    const before = { ...registry.counters };

    // One free seat: a4 is copied now (the loop waits on it); the other three get room, not copies.
    registry.planStep([], queue, 0, 1);
    expect(queue.map((n) => registry.isResident(n))).toEqual([true, false, false, false]);
    expect(registry.counters.blockingCopySeconds).toBeGreaterThan(before.blockingCopySeconds);
    expect(registry.counters.numEvictions - before.numEvictions).toBe(4);
    registry.endPlanning();

    // The step ends after one copy: a5 is written, a6 and a7 wait for the next step.
    let copies = 0;
    const writes = storage.numWrites;
    await registry.prefetchDuringStep(() => storage.numWrites - writes >= 1 || copies++ > 5);
    expect(queue.map((n) => registry.isResident(n))).toEqual([true, true, false, false]);
    expect(registry.counters.numOverlappedPoolLoads - before.numOverlappedPoolLoads).toBe(1);

    await registry.prefetchDuringStep(() => false);
    expect(queue.every((n) => registry.isResident(n))).toBe(true);
    expect(registry.counters.numOverlappedPoolLoads - before.numOverlappedPoolLoads).toBe(3);
    for (const name of queue) storage.check(registry.layoutOf(name)!);
  });

  it("lets KV take back queued adapters the step has no seat for, furthest back in the queue first, and prefetches around the running sequences' next KV blocks", async () => {
    const pool = new PagePool(400, fakeConfig.hiddenSize);
    const { registry } = newRegistry(pool, fakeConfig, { maxLoras: 10 });
    await registerMany(registry, 5);
    for (const name of ['a0', 'a1', 'a2', 'a3']) await makeResident(registry, [name]);
    const pagesOf = (name: string) => registry.layoutOf(name)!.allPages.length;
    const a3Pages = pagesOf('a3');

    // a0 runs, one seat is free: a1 may be admitted and is protected; a2 and a3 are prefetches.
    // Protected as well, a queue of --max-loras adapters could hold every page the running
    // sequences' KV needs.
    registry.planStep(['a0'], ['a1', 'a2', 'a3'], 0, 1);
    expect(registry.reclaimablePages()).toBe(pagesOf('a2') + a3Pages);
    const kv = pool.allocate(pool.numFree + 1, 'kv');
    expect(['a0', 'a1', 'a2', 'a3'].map((n) => registry.isResident(n))).toEqual([true, true, true, false]);
    registry.endPlanning();
    pool.free(kv);

    // Prefetching a3 again leaves the free pages the running sequences' next blocks need.
    const reserve = pool.numFree - a3Pages + 1;
    registry.planStep(['a0'], ['a1', 'a2', 'a3'], reserve, 0);
    registry.endPlanning();
    await registry.prefetchDuringStep(() => false);
    expect(registry.isResident('a3')).toBe(false);
    registry.planStep(['a0'], ['a1', 'a2', 'a3'], 0, 0);
    registry.endPlanning();
    await registry.prefetchDuringStep(() => false);
    expect(registry.isResident('a3')).toBe(true);
  });

  it('reads the queue from disk in queue order: one at a time while nothing runs, together beside a step; back to back; a failed read waits for the next plan', async () => {
    const pool = new PagePool(800, fakeConfig.hiddenSize);
    const { registry, files } = newRegistry(pool, fakeConfig, { maxLoras: 2, maxCpuLoras: 16 });
    await registerMany(registry, 12);
    files.corrupt.add('/adapters/a3');
    const failed: string[] = [];
    registry.onReadFailure = (name) => failed.push(name);
    const onDisk = (names: string[]) =>
      names.filter((n) => registry.list().find((a) => a.name === n)?.tier === 'disk');
    // Nothing runs: the head's read goes alone, the next starts as it settles, with no plan between.
    const queue = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5'];
    registry.planStep([], queue, 0);
    registry.endPlanning();
    for (let i = 1; i <= 3; i++) {
      await settle();
      expect(files.reads).toEqual(queue.slice(0, i));
    }
    for (let i = 0; i < 10 && onDisk(queue).length > 1; i++) await settle();
    expect(files.reads).toEqual(queue);
    expect(onDisk(queue)).toEqual(['a3']);
    expect(failed).toEqual(['a3']);
    // Not read again until the queue is planned anew.
    for (let i = 0; i < 3; i++) await settle();
    expect(files.reads.filter((n) => n === 'a3')).toHaveLength(1);

    // a0 runs: the queue's reads overlap the step, all at once.
    files.reads.length = 0;
    const next = ['a3', 'a6', 'a7', 'a8', 'a9', 'a10'];
    registry.planStep(['a0'], next, 0);
    registry.endPlanning();
    await registry.prefetchDuringStep(() => true);
    await settle();
    expect(files.reads).toEqual(next);
  });

  it('keeps at most --max-cpu-loras host copies', async () => {
    const pool = new PagePool(400, fakeConfig.hiddenSize);
    const { registry, files } = newRegistry(pool, fakeConfig, { maxLoras: 2, maxCpuLoras: 3 });
    await registerMany(registry, 6);
    for (const name of ['a0', 'a1', 'a2', 'a3', 'a4']) await makeResident(registry, [name]);
    const tiers = registry.list().map((a) => a.tier);
    expect(tiers.filter((t) => t === 'pool')).toHaveLength(2);
    expect(registry.list().filter((a) => a.tier !== 'disk').length).toBeLessThanOrEqual(3);
    expect(registry.counters.numHostDrops).toBeGreaterThan(0);
    // An adapter dropped from both tiers is read from disk again when needed.
    const before = files.reads.length;
    await makeResident(registry, ['a0']);
    expect(files.reads.length).toBe(before + 1);
  });

  it('swaps in-place loads between steps: whole new weights, old pages freed', async () => {
    const pool = new PagePool(200, fakeConfig.hiddenSize);
    const { registry, storage, files } = newRegistry(pool, fakeConfig);
    await registerMany(registry, 1);
    await makeResident(registry, ['a0']);
    registry.pin('a0');
    const old = registry.layoutOf('a0')!;
    const oldWeights = storage.check(old);
    files.versions.set('/adapters/a0', 1);
    await registry.load('a0', '/adapters/a0', true);
    // Loaded, but not visible until the next step is planned.
    expect(registry.layoutOf('a0')).toBe(old);
    registry.planStep(['a0'], [], 0);
    registry.endPlanning();
    const fresh = registry.layoutOf('a0')!;
    expect(fresh).not.toBe(old);
    expect(storage.check(fresh)).not.toBe(oldWeights);
    expect(pool.numUsed('adapter')).toBe(fresh.allPages.length);
    registry.unpin('a0');
  });

  it('unload refuses new requests at once and frees the adapter when its last request ends', async () => {
    const pool = new PagePool(200, fakeConfig.hiddenSize);
    const { registry } = newRegistry(pool, fakeConfig);
    await registerMany(registry, 2);
    await makeResident(registry, ['a0']);
    registry.acquire('a0');
    registry.unload('a0');
    expect(registry.has('a0')).toBe(false);
    expect(await registry.resolve('a0')).toBe(false);
    expect(() => registry.acquire('a0')).toThrow(AdapterError);
    expect(registry.list().map((a) => a.name)).toEqual(['a1']);
    expect(pool.numUsed('adapter')).toBeGreaterThan(0);
    registry.release('a0');
    expect(pool.numUsed('adapter')).toBe(0);
    expect(() => registry.unload('a0')).toThrow(/not loaded/);
    await registry.register('a0', '/adapters/a0');
    expect(registry.has('a0')).toBe(true);
  });

  it('refuses bad loads without changing anything, and serializes two loads of one name', async () => {
    const pool = new PagePool(200, fakeConfig.hiddenSize);
    const files = new FakeAdapterFiles(fakeConfig, (path) => (path.endsWith('big9') ? 128 : 2));
    const { registry } = newRegistry(pool, fakeConfig, { maxLoraRank: 64 }, files);
    files.corrupt.add('/adapters/bad1');
    await expect(registry.load('bad', '/adapters/bad1', false)).rejects.toThrow(/corrupt/);
    await expect(registry.load('big', '/adapters/big9', false)).rejects.toThrow(
      /rank 128, above --max-lora-rank 64/,
    );
    expect(registry.numRegistered).toBe(0);
    expect(pool.numUsed()).toBe(0);

    const results = await Promise.allSettled([
      registry.load('x', '/adapters/x1', false),
      registry.load('x', '/adapters/x2', false),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/already loaded/);
    expect(registry.list()).toMatchObject([{ name: 'x', path: '/adapters/x1', tier: 'host' }]);
  });

  it('refuses an adapter that cannot fit beside one full-context sequence', async () => {
    const pool = new PagePool(40, fakeConfig.hiddenSize);
    const { registry } = newRegistry(pool, fakeConfig, { pagesForFullContext: 30 });
    await expect(registry.register('a0', '/adapters/a0')).rejects.toThrow(
      /needs \d+ pages; beside one full-context sequence \(30 pages\)/,
    );
  });
});

describe('host copies', () => {
  it('keep the file dtype: an f16 adapter takes 2 bytes per weight in host RAM and widens exactly', async () => {
    const config = syntheticConfig(TINY_SPEC);
    const dir = await mkdtemp(join(tmpdir(), 'loom-f16-adapter-'));
    try {
      const spec = {
        name: 'h',
        rank: 4,
        alpha: 8,
        targetModules: ['q_proj' as const, 'down_proj' as const],
        seed: 3,
      };
      const written = await writeSyntheticAdapter(dir, config, spec, 'base', 'F16');
      const stored = await loadStoredAdapter('h', dir, config);
      const elements = written.layers.reduce(
        (n, layer) => n + Object.values(layer).reduce((k, p) => k + p.a.length + p.b.length, 0),
        0,
      );
      expect(stored.numBytes).toBe(2 * elements);
      expect(stored.layers[0].q_proj?.a.data).toBeInstanceOf(Uint16Array);
      const widened = widenAdapter(stored);
      expect(widened.layers[1].down_proj?.b).toEqual(written.layers[1].down_proj?.b);
      expect(widened).toEqual({ ...(await loadAdapter('h', dir, config)) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
