import type { LlamaConfig } from '../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../model/llama-modules.js';
import type { StoredLoraAdapter, StoredMatrix } from '../model/stored-adapter.js';
import { decodeInto, halfTable } from '../model/tensor-codec.js';

/**
 * Where one adapter's LoRA matrices live in the pool, for one layer and target module.
 *
 * A is stored as its `rank` rows of `inFeatures` elements; B is stored transposed, as `rank`
 * rows of `outFeatures` elements. Each rank-row starts on a page boundary and takes
 * ceil(features / pageSize) pages, so rank-row i of A is the elements
 *   pages aPages[i·pagesPerRowA …], concatenated, first inFeatures of them.
 * Rows never share a page, so a module of rank r takes exactly r rows' pages: nothing is padded
 * to a maximum rank, neither across adapters nor across the modules of one adapter (PEFT's
 * rank_pattern gives modules different ranks).
 */
export interface ModulePages {
  /** This module's rank in this layer. */
  rank: number;
  /** This module's scale (alpha / rank, or alpha / sqrt(rank) with rsLoRA, its own alpha and rank). */
  scale: number;
  inFeatures: number;
  outFeatures: number;
  pagesPerRowA: number;
  pagesPerRowB: number;
  aPages: Int32Array; // rank · pagesPerRowA
  bPages: Int32Array; // rank · pagesPerRowB
}

export interface AdapterLayout {
  name: string;
  /** The largest rank of its modules: a bound for buffers sized per token (each module has its own). */
  rank: number;
  /** modules[layer][module], absent where the adapter does not touch it. */
  modules: Array<Partial<Record<TargetModule, ModulePages>>>;
  /** Every page the adapter holds, for freeing. */
  allPages: Int32Array;
}

/** Rank of each module an adapter holds, per layer: what its page count depends on. */
export type ModuleRanks = Partial<Record<TargetModule, number>>;

/** The ranks of an adapter's modules (f32 or host copy: only each pair's rank is read). */
function moduleRanksOf(adapter: {
  layers: ReadonlyArray<Partial<Record<TargetModule, { rank: number }>>>;
}): ModuleRanks[] {
  return adapter.layers.map((layer) => {
    const ranks: ModuleRanks = {};
    for (const m of TARGET_MODULES) {
      const pair = layer[m];
      if (pair) ranks[m] = pair.rank;
    }
    return ranks;
  });
}

/** Pages an adapter needs in a pool of `pageSize`-element pages (f32 or host copy). */
export function adapterPageCount(
  config: LlamaConfig,
  adapter: { layers: ReadonlyArray<Partial<Record<TargetModule, { rank: number }>>> },
): number {
  return pagesForModuleRanks(config, moduleRanksOf(adapter));
}

/** Pages of an adapter whose modules have `ranks[layer][module]` (known before its weights are read). */
export function pagesForModuleRanks(config: LlamaConfig, ranks: ReadonlyArray<ModuleRanks>): number {
  let total = 0;
  for (const layer of ranks) {
    for (const m of TARGET_MODULES) {
      const rank = layer[m];
      if (rank !== undefined) total += rank * pagesPerRankRow(config, m);
    }
  }
  return total;
}

/** Pages of an adapter of one rank, `rank`, on every module of `targets[layer]`. */
export function pagesForTargets(
  config: LlamaConfig,
  rank: number,
  targets: ReadonlyArray<readonly TargetModule[]>,
): number {
  return pagesForModuleRanks(
    config,
    targets.map((modules) => Object.fromEntries(modules.map((m) => [m, rank]))),
  );
}

/** Pages of one rank-row of A plus one of Bᵀ for module m. */
function pagesPerRankRow(config: LlamaConfig, m: TargetModule): number {
  const ps = config.hiddenSize;
  const { inFeatures, outFeatures } = moduleShape(config, m);
  return Math.ceil(inFeatures / ps) + Math.ceil(outFeatures / ps);
}

/** What placing an adapter reads: its name, ranks and scales (f32 adapter or host copy alike). */
export interface AdapterShape {
  name: string;
  rank: number;
  layers: ReadonlyArray<Partial<Record<TargetModule, { rank: number; scale: number }>>>;
}

/** Assigns already-allocated `pages` (length adapterPageCount) to the adapter's rank-rows. */
export function layoutAdapter(config: LlamaConfig, adapter: AdapterShape, pages: Int32Array): AdapterLayout {
  const ps = config.hiddenSize;
  let next = 0;
  const modules = adapter.layers.map((layer) => {
    const placed: Partial<Record<TargetModule, ModulePages>> = {};
    for (const m of TARGET_MODULES) {
      const pair = layer[m];
      if (!pair) continue;
      const { rank, scale } = pair;
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const pagesPerRowA = Math.ceil(inFeatures / ps);
      const pagesPerRowB = Math.ceil(outFeatures / ps);
      const aPages = pages.subarray(next, next + rank * pagesPerRowA);
      next += aPages.length;
      const bPages = pages.subarray(next, next + rank * pagesPerRowB);
      next += bPages.length;
      placed[m] = { rank, scale, inFeatures, outFeatures, pagesPerRowA, pagesPerRowB, aPages, bPages };
    }
    return placed;
  });
  if (next !== pages.length)
    throw new Error(`adapter ${adapter.name}: layout used ${next} of ${pages.length} pages`);
  return { name: adapter.name, rank: adapter.rank, modules, allPages: pages };
}

/**
 * Copies an adapter's A and Bᵀ rows into page storage (any indexable f32 view of the pool).
 * Engines with host storage call it directly; the webgpu engine stages pages through fillAdapterPages.
 */
export function writeAdapterRows(
  storage: Float32Array,
  pageSize: number,
  layout: AdapterLayout,
  adapter: StoredLoraAdapter,
): void {
  fillAdapterPages(pageSize, layout, adapter, (page) => ({ into: storage, at: page * pageSize }));
}

/**
 * writeAdapterRows with each Bᵀ row already multiplied by its module's scale in that layer, for
 * an engine whose step multiplies by no scale of its own (the onnx engine: one op per module and
 * layer less in every step that has LoRA). Returns the modules whose written Bᵀ holds a value
 * that is not finite in some layer (NaN or ±Inf in the file, or a scale × b that overflows f32).
 */
export function writeScaledAdapterRows(
  storage: Float32Array,
  pageSize: number,
  layout: AdapterLayout,
  adapter: StoredLoraAdapter,
): Set<TargetModule> {
  return fillAdapterPages(pageSize, layout, adapter, (page) => ({ into: storage, at: page * pageSize }), {
    scaleB: true,
  });
}

/** The Bᵀ buffer kept between uploads: a fresh one per module is page-faulted in on every upload. */
let btScratch = new Float32Array(0);

function btScratchOf(length: number): Float32Array {
  if (btScratch.length < length) btScratch = new Float32Array(length);
  return btScratch.subarray(0, length);
}

/** `length` elements of a stored matrix from `from`, as f32 into `out` (F16/BF16 widened on the way). */
function copyWidened(matrix: StoredMatrix, from: number, length: number, out: Float32Array): void {
  const { data } = matrix;
  if (data instanceof Float32Array) out.set(data.subarray(from, from + length));
  else decodeInto(data.subarray(from, from + length), matrix.dtype, out);
}

const TILE = 16;

/**
 * out[c · rows + r] = m[r · cols + c] as f32, in tiles of rows (a few KiB of `m` at a time, short
 * runs of `out`). F16/BF16 are widened in the same pass: widening first cost a pass of its own.
 */
function transposeWidened(matrix: StoredMatrix, rows: number, cols: number, out: Float32Array): void {
  const { data, dtype } = matrix;
  if (data instanceof Float32Array) {
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      for (let c = 0; c < cols; c++) {
        const base = c * rows;
        for (let r = r0; r < r1; r++) out[base + r] = data[r * cols + c];
      }
    }
  } else if (dtype === 'BF16') {
    // bf16 is the top half of an f32: its bits shifted up are the value, exactly.
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      for (let c = 0; c < cols; c++) {
        const base = c * rows;
        for (let r = r0; r < r1; r++) bits[base + r] = data[r * cols + c] << 16;
      }
    }
  } else {
    const table = halfTable();
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      for (let c = 0; c < cols; c++) {
        const base = c * rows;
        for (let r = r0; r < r1; r++) out[base + r] = table[data[r * cols + c]];
      }
    }
  }
}

/** Where a page's content goes: `into` from element `at`, one page long. */
export interface PageDestination {
  into: Float32Array;
  at: number;
}

/**
 * Fills every page an adapter's A and Bᵀ rows take, in order, at the destination `placePage`
 * gives for it: the rows' elements, then zeros to the page's end (a row's last page). F16/BF16
 * host copies are widened straight into the destination (A) or while Bᵀ is transposed, one
 * module's B at a time: the whole adapter in f32 never exists (a rank-64 TinyLlama-shaped one
 * would be 220 MB), and no element is copied twice on its way to a page.
 */
export function fillAdapterPages(
  pageSize: number,
  layout: AdapterLayout,
  adapter: StoredLoraAdapter,
  placePage: (page: number) => PageDestination,
  /** scaleB: Bᵀ rows times their module's scale (writeScaledAdapterRows). */
  { scaleB = false }: { scaleB?: boolean } = {},
): Set<TargetModule> {
  /** With scaleB, the modules whose scaled Bᵀ is not all finite (checked in the same pass). */
  const nonFinite = new Set<TargetModule>();
  /** `length` elements from `copy` into the pages of a row that starts at pages[first]. */
  const fillRow = (
    pages: Int32Array,
    first: number,
    length: number,
    copy: (from: number, count: number, out: Float32Array) => void,
  ) => {
    for (let off = 0, p = first; off < length; off += pageSize, p++) {
      const count = Math.min(pageSize, length - off);
      const { into, at } = placePage(pages[p]);
      copy(off, count, into.subarray(at, at + count));
      if (count < pageSize) into.fill(0, at + count, at + pageSize);
    }
  };
  layout.modules.forEach((placed, l) => {
    for (const m of TARGET_MODULES) {
      const pagesOf = placed[m];
      const pair = adapter.layers[l][m];
      if (!pagesOf || !pair) continue;
      const { rank, inFeatures, outFeatures, pagesPerRowA, pagesPerRowB } = pagesOf;
      if (pair.rank !== rank)
        throw new Error(`adapter ${layout.name}: layer ${l} ${m} has rank ${pair.rank}, its pages ${rank}`);
      // Bᵀ of the module in tiles, into a buffer kept between calls: a strided pass per rank-row
      // and a fresh buffer per module made uploads run at 0.3–0.5 GB/s on the H200 host.
      const bt = btScratchOf(rank * outFeatures);
      transposeWidened(pair.b, outFeatures, rank, bt);
      if (scaleB && !scaleInPlace(bt, pagesOf.scale)) nonFinite.add(m);
      for (let r = 0; r < rank; r++) {
        fillRow(pagesOf.aPages, r * pagesPerRowA, inFeatures, (from, count, out) =>
          copyWidened(pair.a, r * inFeatures + from, count, out),
        );
        fillRow(pagesOf.bPages, r * pagesPerRowB, outFeatures, (from, count, out) =>
          out.set(bt.subarray(r * outFeatures + from, r * outFeatures + from + count)),
        );
      }
    }
  });
  return nonFinite;
}

/** values ·= scale; whether every product is finite once rounded to f32. */
function scaleInPlace(values: Float32Array, scale: number): boolean {
  let finite = true;
  for (let i = 0; i < values.length; i++) {
    const v = Math.fround(values[i] * scale);
    values[i] = v;
    if (!Number.isFinite(v)) finite = false;
  }
  return finite;
}
