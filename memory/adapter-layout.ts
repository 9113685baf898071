import type { LlamaConfig } from '../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../model/llama-modules.js';
import type { LoraAdapter } from '../model/lora-adapter.js';

/**
 * Where one adapter's LoRA matrices live in the pool, for one layer and target module.
 *
 * A is stored as its `rank` rows of `inFeatures` elements; B is stored transposed, as `rank`
 * rows of `outFeatures` elements. Each rank-row starts on a page boundary and takes
 * ceil(features / pageSize) pages, so rank-row i of A is the elements
 *   pages aPages[i·pagesPerRowA …], concatenated, first inFeatures of them.
 * Rows never share a page, so an adapter of rank r takes exactly r rows' pages: nothing is
 * padded to a maximum rank.
 */
export interface ModulePages {
  inFeatures: number;
  outFeatures: number;
  pagesPerRowA: number;
  pagesPerRowB: number;
  aPages: Int32Array; // rank · pagesPerRowA
  bPages: Int32Array; // rank · pagesPerRowB
}

export interface AdapterLayout {
  name: string;
  rank: number;
  scale: number;
  /** modules[layer][module], absent where the adapter does not touch it. */
  modules: Array<Partial<Record<TargetModule, ModulePages>>>;
  /** Every page the adapter holds, for freeing. */
  allPages: Int32Array;
}

/** Pages an adapter needs in a pool of `pageSize`-element pages. */
export function adapterPageCount(config: LlamaConfig, adapter: LoraAdapter): number {
  return pagesForTargets(
    config,
    adapter.rank,
    adapter.layers.map((layer) => TARGET_MODULES.filter((m) => layer[m])),
  );
}

/** Pages of a rank-`rank` adapter holding A/B pairs for `targets[layer]` (known before its weights are read). */
export function pagesForTargets(
  config: LlamaConfig,
  rank: number,
  targets: ReadonlyArray<readonly TargetModule[]>,
): number {
  const ps = config.hiddenSize;
  let total = 0;
  for (const modules of targets) {
    for (const m of modules) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      total += rank * (Math.ceil(inFeatures / ps) + Math.ceil(outFeatures / ps));
    }
  }
  return total;
}

/** Assigns already-allocated `pages` (length adapterPageCount) to the adapter's rank-rows. */
export function layoutAdapter(config: LlamaConfig, adapter: LoraAdapter, pages: Int32Array): AdapterLayout {
  const ps = config.hiddenSize;
  let next = 0;
  const modules = adapter.layers.map((layer) => {
    const placed: Partial<Record<TargetModule, ModulePages>> = {};
    for (const m of TARGET_MODULES) {
      if (!layer[m]) continue;
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const pagesPerRowA = Math.ceil(inFeatures / ps);
      const pagesPerRowB = Math.ceil(outFeatures / ps);
      const aPages = pages.subarray(next, next + adapter.rank * pagesPerRowA);
      next += aPages.length;
      const bPages = pages.subarray(next, next + adapter.rank * pagesPerRowB);
      next += bPages.length;
      placed[m] = { inFeatures, outFeatures, pagesPerRowA, pagesPerRowB, aPages, bPages };
    }
    return placed;
  });
  if (next !== pages.length)
    throw new Error(`adapter ${adapter.name}: layout used ${next} of ${pages.length} pages`);
  return { name: adapter.name, rank: adapter.rank, scale: adapter.scale, modules, allPages: pages };
}

/**
 * Copies an adapter's A and Bᵀ rows into page storage (any indexable f32 view of the pool).
 * Engines with host storage call it directly; the webgpu engine writes through forEachAdapterPage.
 */
export function writeAdapterRows(
  storage: Float32Array,
  pageSize: number,
  layout: AdapterLayout,
  adapter: LoraAdapter,
): void {
  forEachAdapterPage(pageSize, layout, adapter, (page, content) => {
    const base = page * pageSize;
    storage.set(content, base);
    storage.fill(0, base + content.length, base + pageSize);
  });
}

/**
 * Every page an adapter's A and Bᵀ rows fill, in order: `content` is what starts the page, one
 * page's worth except on a row's last page, whose rest the writer must zero.
 */
export function forEachAdapterPage(
  pageSize: number,
  layout: AdapterLayout,
  adapter: LoraAdapter,
  write: (page: number, content: Float32Array) => void,
): void {
  const writeRow = (pages: Int32Array, first: number, row: Float32Array) => {
    for (let off = 0, p = first; off < row.length; off += pageSize, p++)
      write(pages[p], row.subarray(off, Math.min(off + pageSize, row.length)));
  };
  layout.modules.forEach((placed, l) => {
    for (const m of TARGET_MODULES) {
      const pagesOf = placed[m];
      const pair = adapter.layers[l][m];
      if (!pagesOf || !pair) continue;
      const { inFeatures, outFeatures, pagesPerRowA, pagesPerRowB } = pagesOf;
      for (let r = 0; r < layout.rank; r++) {
        writeRow(pagesOf.aPages, r * pagesPerRowA, pair.a.subarray(r * inFeatures, (r + 1) * inFeatures));
        const bt = new Float32Array(outFeatures);
        for (let o = 0; o < outFeatures; o++) bt[o] = pair.b[o * layout.rank + r];
        writeRow(pagesOf.bPages, r * pagesPerRowB, bt);
      }
    }
  });
}
