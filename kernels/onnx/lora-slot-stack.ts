import * as ort from 'onnxruntime-node';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import { moduleMaxRank } from './lora-segments.js';

/** How much more multiply-adds the masked stack may spend than exact per-adapter products. */
const MAX_STACK_WASTE = 8;

/**
 * The fewest rows a block of the blocked form may have: a token's x is copied once per block of
 * its adapter, and below this the copies and MLAS's per-batch cost outweigh the rows.
 */
export const MIN_BLOCK_ROWS = 4;

/**
 * How many rows a step's window of the stack may span per row its adapters need. Every row of the
 * window is read each step (both forms multiply whole blocks), and at decode the step is bound by
 * bytes read, not by multiply-adds: a window twice its adapters' rows reads their weights twice.
 */
const WINDOW_SLACK = 1.25;

/** Shapes of zero-copy views kept per module (each is one tensor per layer for A and Bᵀ). */
const MAX_CACHED_VIEWS = 64;

/**
 * The rows of the blocked form's blocks for adapters on these rows (each at `first`, `rows` long):
 * the greatest common divisor of every first row and row count, so that each adapter covers whole
 * blocks of its own; 0 when that is below MIN_BLOCK_ROWS (or nothing is placed).
 */
export function blockRowsOf(placed: Iterable<{ first: number; rows: number }>): number {
  let d = 0;
  for (const { first, rows } of placed) d = commonBlockRows(d, first, rows);
  return d >= MIN_BLOCK_ROWS ? d : 0;
}

/** Blocks of `d` rows (0: none yet) narrowed to fit one more adapter's rows too. */
function commonBlockRows(d: number, first: number, rows: number): number {
  return gcd(gcd(d, rows), first);
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

function gcd(x: number, y: number): number {
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/**
 * Where an adapter of `rows` rows may start: on a multiple of the largest power of two dividing
 * `rows`, up to 8, so adapters of ranks 8, 16, 32, 64 share blocks of 8 rows (blockRowsOf).
 */
function alignmentOf(rows: number): number {
  let align = 1;
  while (align < 8 && rows % (align * 2) === 0) align *= 2;
  return align;
}

/**
 * The onnx engine's stacked LoRA slots (vLLM's `lora_a_stacked` / `lora_b_stacked`, on the host):
 * per module and layer, one [rows, in] block of A rows and one [rows, out] block of Bᵀ rows
 * that the adapters of recent steps share, each adapter on a run of rows. A step's slotted tokens
 * go through two MatMuls per module and layer whatever the number of adapters (x·Aᵀ, then ·Bᵀ:
 * masked, over every row of the step's window with other adapters' columns dropped by selection;
 * or blocked, each token against its own adapter's blocks), reading each adapter's rows once, in
 * place (zero-copy views).
 *
 * The pages hold each layer's Bᵀ rows already times the adapter's scale of that layer
 * (writeScaledAdapterRows), so a copy is a plain memcpy and a step multiplies by no scale.
 *
 * An adapter comes in by a copy from its pool pages (which stay its home: memory/adapter-layout.ts)
 * when a step first needs it, and stays until a step needs its rows for another adapter or its
 * pages are released or rewritten (`forget`). A step reads only the rows up to the end of its
 * highest adapter, so adapters are placed as low as the step's own ones allow.
 *
 * Isolation: another adapter's columns are dropped by selection, not arithmetic, and the
 * expansion multiplies them as exact zeros; so Bᵀ rows must be finite (0 · ∞ is NaN). An adapter
 * whose Bᵀ rows are not is never stacked (it runs as gathered segments, which keep every
 * token to its own rows), and no row ever read holds a non-finite Bᵀ value.
 */
export class LoraSlotStack {
  private readonly modules = new Map<TargetModule, ModuleStack>();
  private clock = 0;
  /** The adapters the current step named when it began (beginStep), for its windows. */
  private inUse: readonly AdapterLayout[] = [];
  /** Each module's window of rows for the current step, fixed by its first place() call. */
  private readonly windows = new Map<TargetModule, { from: number; to: number }>();
  /**
   * The modules whose Bᵀ rows were all finite when the adapter's pages were last written
   * (noteWrite): a copy-in of those skips the scan, and of the others does not copy. An adapter
   * not noted is scanned as it is copied in.
   */
  private readonly finiteWrites = new WeakMap<AdapterLayout, ReadonlySet<TargetModule>>();

  constructor(
    private readonly storage: Float32Array,
    private readonly config: LlamaConfig,
    /** Rows per module and layer (the adapters' ranks share them); 0: no stack, every adapter gathered. */
    readonly capacityRows: number,
  ) {
    for (const m of TARGET_MODULES) {
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const L = config.numLayers;
      this.modules.set(m, {
        inFeatures,
        outFeatures,
        a: new Float32Array(L * capacityRows * inFeatures),
        bt: new Float32Array(L * capacityRows * outFeatures),
        placed: new Map(),
        unstackable: new WeakSet(),
        views: new Map(),
      });
    }
  }

  /**
   * A new step's number, for place(): adapters a step places are not evicted for each other, nor
   * are those `inUse` (the whole plan's, when the engine runs it in parts: step-split.ts).
   */
  beginStep(inUse: Iterable<AdapterLayout> = []): number {
    const step = ++this.clock;
    this.inUse = [...inUse];
    this.windows.clear();
    for (const a of this.inUse)
      for (const stack of this.modules.values()) {
        const entry = stack.placed.get(a);
        if (entry) entry.lastStep = step;
      }
    return step;
  }

  /**
   * Places module m's adapters of a step (most worth stacking first), copying in those not
   * already there, low in the stack, and evicting adapters the step does not use where their
   * rows are needed. Returns each placed adapter's first row; the others are for gathered segments.
   */
  place(
    m: TargetModule,
    adapters: readonly AdapterLayout[],
    step: number,
    tokensOf: (a: AdapterLayout) => number,
  ): Map<AdapterLayout, number> {
    const stack = this.modules.get(m)!;
    const placed = new Map<AdapterLayout, number>();
    if (this.capacityRows === 0) return placed;
    // In the masked form every stacked token multiplies every row between the lowest and the
    // highest a step uses (its window); in the blocked form (step-feeds.ts blockedForm: the rows
    // cut into blocks of B, the greatest common divisor of every adapter's first row and rows)
    // each block's tokens, padded to the most any adapter has, multiply its B rows. Exact
    // per-adapter work is Σ tokens × rows: an adapter joins only while the cheaper form stays
    // within MAX_STACK_WASTE of that (32 decode tokens of distinct adapters would compute 32×
    // their rows masked, once blocked).
    let tokens = 0;
    /** The step's window of rows so far: [low, used). */
    let low = Number.POSITIVE_INFINITY;
    let used = 0;
    let exact = 0;
    /** The blocks the rows taken so far could be cut into (blockRowsOf). */
    let common = 0;
    let mostTokens = 0;
    const blocks = (first: number, rows: number) => commonBlockRows(common, first, rows) >= MIN_BLOCK_ROWS;
    const take = (a: AdapterLayout, first: number, rows: number) => {
      placed.set(a, first);
      common = commonBlockRows(common, first, rows);
      tokens += tokensOf(a);
      mostTokens = Math.max(mostTokens, tokensOf(a));
      low = Math.min(low, first);
      used = Math.max(used, first + rows);
      exact += tokensOf(a) * rows;
    };
    const withinWaste = (t: number, rows: number, first: number) => {
      const span = Math.max(used, first + rows) - Math.min(low, first);
      const masked = (tokens + t) * span;
      const blocked = blocks(first, rows) ? span * Math.max(mostTokens, t) : Number.POSITIVE_INFINITY;
      return Math.min(masked, blocked) <= MAX_STACK_WASTE * (exact + t * rows);
    };
    const window = this.windowOf(m, stack, adapters);
    const inWindow = (first: number, rows: number) => window.from <= first && first + rows <= window.to;
    for (const a of adapters) {
      const entry = stack.placed.get(a);
      if (!entry) continue;
      entry.lastStep = step;
      // Outside the step's window: copied in again inside it (one copy, against reading the rows
      // between on every step the adapter decodes).
      if (!inWindow(entry.first, entry.rows)) {
        stack.placed.delete(a);
        continue;
      }
      // Already stacked, but its tokens against rows high in the stack would multiply every row
      // below them: it goes through placement again, like a new one (lower rows, or gathered).
      if (withinWaste(tokensOf(a), entry.rows, entry.first)) take(a, entry.first, entry.rows);
      else stack.placed.delete(a);
    }
    for (const a of adapters) {
      if (placed.has(a) || stack.placed.has(a) || stack.unstackable.has(a)) continue;
      const rows = moduleMaxRank(a, m);
      if (rows === 0 || rows > this.capacityRows) continue;
      const t = tokensOf(a);
      // The best case (placed at the window's bottom) already costs too much: gathered instead.
      if (!withinWaste(t, rows, Number.isFinite(low) ? low : 0)) continue;
      // The lowest rows this step's adapters leave, whose stale occupants go, unless free rows
      // would not raise the rows the step reads any higher: every row of a step's window is read
      // (and multiplied, masked), so a compact stack beats keeping finished sequences' adapters
      // around (one that comes back costs one copy in).
      const align = alignmentOf(rows);
      const free = freeRun(stack, rows, align, window, () => true);
      const lowest = freeRun(stack, rows, align, window, (e) => e.lastStep === step);
      const first = free >= 0 && (lowest < 0 || free + rows <= Math.max(used, lowest + rows)) ? free : lowest;
      if (first < 0 || !withinWaste(t, rows, first)) continue;
      if (first !== free)
        for (const [victim, e] of stack.placed)
          if (e.first < first + rows && first < e.first + e.rows) stack.placed.delete(victim);
      if (!this.copyIn(stack, m, a, first, rows)) {
        stack.unstackable.add(a);
        continue;
      }
      stack.placed.set(a, { first, rows, lastStep: step });
      take(a, first, rows);
    }
    return placed;
  }

  /**
   * Module m's window of rows for the step: as many rows as WINDOW_SLACK allows over the rows its
   * adapters (those beginStep named, else these) need, placed where it keeps the most of their
   * rows already stacked (lowest first); new adapters go inside it, those outside move in. Fixed
   * for the step, so the parts of a plan run in parts (step-split.ts) agree on it.
   */
  private windowOf(
    m: TargetModule,
    stack: ModuleStack,
    adapters: readonly AdapterLayout[],
  ): { from: number; to: number } {
    const known = this.windows.get(m);
    if (known) return known;
    const users = this.inUse.length > 0 ? this.inUse : adapters;
    let need = 0;
    for (const a of new Set(users)) {
      const rows = moduleMaxRank(a, m);
      if (rows <= this.capacityRows) need += rows;
    }
    const span = Math.min(this.capacityRows, Math.ceil((need * WINDOW_SLACK) / 8) * 8);
    const stacked = users.flatMap((a) => {
      const e = stack.placed.get(a);
      return e ? [e] : [];
    });
    let best = { from: 0, to: span };
    let bestRows = -1;
    for (const start of [0, ...stacked.map((e) => e.first)].sort((x, y) => x - y)) {
      const from = Math.min(start, this.capacityRows - span);
      let rows = 0;
      for (const e of stacked) if (from <= e.first && e.first + e.rows <= from + span) rows += e.rows;
      if (rows > bestRows) [best, bestRows] = [{ from, to: from + span }, rows];
    }
    this.windows.set(m, best);
    return best;
  }

  /** Module m's in and out features. */
  shapeOf(m: TargetModule): { inFeatures: number; outFeatures: number } {
    const { inFeatures, outFeatures } = this.modules.get(m)!;
    return { inFeatures, outFeatures };
  }

  /** Rows an adapter takes in module m's stack (its highest rank of m over the layers). */
  rowsOf(a: AdapterLayout, m: TargetModule): number {
    return this.modules.get(m)!.placed.get(a)?.rows ?? 0;
  }

  /**
   * Module m's rows [from, to) of every layer as `groups` blocks of (to − from) / groups rows:
   * A [groups, ·, in], Bᵀ [groups, ·, out] (zero-copy views).
   */
  blocks(m: TargetModule, from: number, to: number, groups: number): { a: ort.Tensor[]; bt: ort.Tensor[] } {
    const stack = this.modules.get(m)!;
    const key = `${from}:${to}/${groups}`;
    let views = stack.views.get(key);
    if (!views) {
      // Steps vary the rows they read and their blocks: keep the recent shapes, not every one seen.
      if (stack.views.size >= MAX_CACHED_VIEWS) stack.views.clear();
      const rows = to - from;
      const dims = (features: number) => [groups, rows / groups, features];
      const { inFeatures: inF, outFeatures: outF } = stack;
      const R = this.capacityRows;
      const a: ort.Tensor[] = [];
      const bt: ort.Tensor[] = [];
      for (let l = 0; l < this.config.numLayers; l++) {
        const [first, end] = [l * R + from, l * R + to];
        a.push(new ort.Tensor('float32', stack.a.subarray(first * inF, end * inF), dims(inF)));
        bt.push(new ort.Tensor('float32', stack.bt.subarray(first * outF, end * outF), dims(outF)));
      }
      views = { a, bt };
      stack.views.set(key, views);
    }
    return views;
  }

  /** Drops an adapter whose pages are released or rewritten: its next step copies it in again. */
  forget(a: AdapterLayout): void {
    this.finiteWrites.delete(a);
    for (const stack of this.modules.values()) {
      stack.placed.delete(a);
      stack.unstackable.delete(a);
    }
  }

  /**
   * An adapter's pages were (re)written (writeScaledAdapterRows, which found the modules whose
   * scaled Bᵀ is not all finite as it wrote them), after `forget` dropped what was stacked of the
   * old weights: notes which modules' rows are all finite, so that a copy-in need not scan them.
   */
  noteWrite(a: AdapterLayout, nonFinite: ReadonlySet<TargetModule>): void {
    this.finiteWrites.set(a, new Set(TARGET_MODULES.filter((m) => !nonFinite.has(m))));
  }

  /** Adapters stacked in at least one module. */
  get numStacked(): number {
    const all = new Set<AdapterLayout>();
    for (const stack of this.modules.values()) for (const a of stack.placed.keys()) all.add(a);
    return all.size;
  }

  /**
   * Writes the adapter's A rows and Bᵀ rows of module m into rows [first, first + rows) of every
   * layer, zeros past a layer's own rank (rank_pattern) or where it skips the layer (memcpy: the
   * pages' Bᵀ rows are scaled). False, with nothing kept, when a Bᵀ value is not finite.
   */
  private copyIn(
    stack: ModuleStack,
    m: TargetModule,
    a: AdapterLayout,
    first: number,
    rows: number,
  ): boolean {
    const noted = this.finiteWrites.get(a);
    if (noted && !noted.has(m)) return false;
    const ps = this.config.hiddenSize;
    const R = this.capacityRows;
    const { inFeatures: inF, outFeatures: outF } = stack;
    for (let l = 0; l < this.config.numLayers; l++) {
      const placed = a.modules[l]?.[m];
      const rank = placed?.rank ?? 0;
      const aRows = stack.a.subarray((l * R + first) * inF, (l * R + first + rows) * inF);
      const btRows = stack.bt.subarray((l * R + first) * outF, (l * R + first + rows) * outF);
      aRows.fill(0, rank * inF);
      btRows.fill(0, rank * outF);
      if (!placed) continue;
      for (let r = 0; r < rank; r++) {
        this.copyRow(aRows, r * inF, inF, placed.aPages, r * placed.pagesPerRowA, ps);
        this.copyRow(btRows, r * outF, outF, placed.bPages, r * placed.pagesPerRowB, ps);
      }
      if (!noted && !allFinite(btRows.subarray(0, rank * outF))) {
        // Never leave a non-finite row behind: a later step may read it under another adapter.
        aRows.fill(0);
        btRows.fill(0);
        return false;
      }
    }
    return true;
  }

  /** One rank-row of `features` elements from its pages (a row starts on a page). */
  private copyRow(
    to: Float32Array,
    at: number,
    features: number,
    pages: Int32Array,
    firstPage: number,
    ps: number,
  ): void {
    for (let done = 0, p = firstPage; done < features; done += ps, p++) {
      const n = Math.min(ps, features - done);
      to.set(this.storage.subarray(pages[p] * ps, pages[p] * ps + n), at + done);
    }
  }
}

interface StackEntry {
  first: number;
  rows: number;
  /** The last step that used it (stacked or, past the waste bound, gathered that step). */
  lastStep: number;
}

interface ModuleStack {
  inFeatures: number;
  outFeatures: number;
  /** [layer][row][in]: capacityRows rows per layer. */
  a: Float32Array;
  /** [layer][row][out]: Bᵀ rows, times their adapter's scale in that layer (as in the pages). */
  bt: Float32Array;
  placed: Map<AdapterLayout, StackEntry>;
  /** Adapters whose Bᵀ rows are not finite: gathered, never stacked. */
  unstackable: WeakSet<AdapterLayout>;
  /** Zero-copy views per layer, by the rows a step reads and the blocks it sees them as. */
  views: Map<string, { a: ort.Tensor[]; bt: ort.Tensor[] }>;
}

/**
 * The lowest first row in `window`, a multiple of `align`, of `rows` rows that no entry `blocks`
 * overlaps, or −1.
 */
function freeRun(
  stack: ModuleStack,
  rows: number,
  align: number,
  window: { from: number; to: number },
  blocks: (entry: StackEntry) => boolean,
): number {
  const taken = [...stack.placed.values()].filter(blocks).sort((x, y) => x.first - y.first);
  const aligned = (row: number) => Math.ceil(row / align) * align;
  let start = aligned(window.from);
  for (const t of taken) {
    if (t.first + t.rows <= start) continue;
    if (Math.min(t.first, window.to) - start >= rows) return start;
    start = aligned(Math.max(start, t.first + t.rows));
  }
  return window.to - start >= rows ? start : -1;
}
