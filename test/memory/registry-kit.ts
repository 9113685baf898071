import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { adapterPageCount, pagesForTargets } from '../../memory/adapter-layout.js';
import { type AdapterFiles, AdapterRegistry, type RegistryLimits } from '../../memory/adapter-registry.js';
import type { PagePool } from '../../memory/page-pool.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { type StoredLoraAdapter, storeAdapter } from '../../model/stored-adapter.js';
import { syntheticAdapter } from '../../model/synthetic.js';

/** A fake adapter folder: path `/adapters/NAME` with rank and targets derived from the name's number. */
export class FakeAdapterFiles implements AdapterFiles {
  readonly reads: string[] = [];
  /** Paths whose weights fail to read (a corrupt file found at first use). */
  readonly corrupt = new Set<string>();
  /** Weight versions, bumped by tests to simulate a new checkpoint at the same path. */
  readonly versions = new Map<string, number>();
  /** Names found by lazyPath (adapters added to the folder after start-up). */
  readonly lazyNames = new Set<string>();

  constructor(
    private readonly config: LlamaConfig,
    private readonly rankOf: (path: string) => number = () => 2,
  ) {}

  targetsOf(path: string): TargetModule[] {
    const n = Number(/(\d+)$/.exec(path)?.[1] ?? 0);
    return TARGET_MODULES.filter((_, i) => (n + i) % 3 !== 0);
  }

  async inspect(path: string): Promise<{ rank: number; numPages: number }> {
    const rank = this.rankOf(path);
    const targets = this.targetsOf(path);
    return {
      rank,
      numPages: pagesForTargets(
        this.config,
        rank,
        Array.from({ length: this.config.numLayers }, () => targets),
      ),
    };
  }

  async read(name: string, path: string): Promise<StoredLoraAdapter> {
    // A disk read: completes on a later macrotask, deterministically ordered.
    await new Promise((resolve) => setImmediate(resolve));
    this.reads.push(name);
    if (this.corrupt.has(path)) throw new Error(`${path}: corrupt weights`);
    const version = this.versions.get(path) ?? 0;
    const n = Number(/(\d+)$/.exec(path)?.[1] ?? 0);
    return storeAdapter(
      syntheticAdapter(this.config, {
        name,
        rank: this.rankOf(path),
        alpha: 4,
        targetModules: this.targetsOf(path),
        seed: n * 100 + version,
      }),
    );
  }

  pagesOf(adapter: StoredLoraAdapter): number {
    return adapterPageCount(this.config, adapter);
  }

  async lazyPath(name: string): Promise<string | null> {
    return this.lazyNames.has(name) ? `/adapters/${name}` : null;
  }
}

/**
 * Page storage that remembers which adapter (and which weights) each page was last written with,
 * so a test can check that a step only ever reads its adapter's own, whole, current pages.
 */
export class RecordingStorage {
  readonly pageOwner = new Map<number, { name: string; weights: StoredLoraAdapter }>();
  numWrites = 0;

  writeAdapter(layout: AdapterLayout, adapter: StoredLoraAdapter): void {
    this.numWrites++;
    for (const page of layout.allPages) this.pageOwner.set(page, { name: adapter.name, weights: adapter });
  }

  /** Throws unless every page of `layout` holds `name`'s weights, all of one version. */
  check(layout: AdapterLayout): StoredLoraAdapter {
    let weights: StoredLoraAdapter | null = null;
    for (const page of layout.allPages) {
      const owner = this.pageOwner.get(page);
      if (owner?.name !== layout.name) throw new Error(`page ${page} of ${layout.name} holds ${owner?.name}`);
      if (weights && owner.weights !== weights)
        throw new Error(`${layout.name}: pages of two weight versions`);
      weights = owner.weights;
    }
    if (!weights) throw new Error(`${layout.name} has no pages`);
    return weights;
  }
}

export function newRegistry(
  pool: PagePool,
  config: LlamaConfig,
  limits: Partial<RegistryLimits> = {},
  files = new FakeAdapterFiles(config),
): { registry: AdapterRegistry; files: FakeAdapterFiles; storage: RecordingStorage } {
  const storage = new RecordingStorage();
  const registry = new AdapterRegistry(
    pool,
    storage,
    files,
    { maxLoras: 4, maxCpuLoras: 8, maxLoraRank: 64, pagesForFullContext: 0, ...limits },
    config,
  );
  return { registry, files, storage };
}
