import * as ort from 'onnxruntime-node';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { ZERO_PAGE } from '../../memory/page-pool.js';
import type { TargetModule } from '../../model/llama-modules.js';
import type { StepPlan } from '../engine.js';
import { type LoraRowReads, loraInputNames } from './llama-graph.js';

/**
 * Rank-rows a sub-segment costs beyond its own rows, in the same unit: its share of the batched
 * MatMuls' per-matrix work. Measured where it matters (32 decode sequences of distinct adapters):
 * chunks of 16 rows beat both 8 (too many matrices) and one chunk per adapter (padding) on ranks
 * mixed 8–64, and uniform ranks keep one chunk per adapter.
 */
const CHUNK_OVERHEAD_ROWS = 4;

/** Module m's gathered segments of a step, as packed for the graph (loraInputNames). */
export interface PackedSegments {
  /** Sub-segments (≥ 1: an empty step gets one that adds nothing). */
  subSegments: number;
  /** Rank-rows per sub-segment. */
  chunkRank: number;
  /** Token rows per sub-segment (the longest gathered sequence). */
  rowsPerSegment: number;
}

/**
 * Module m's gathered LoRA (adapters not in a slot): one segment per sequence of such an adapter
 * (S-LoRA's MBGMM shape), cut along the rank into sub-segments of `chunkRank` rows, so a step that
 * mixes ranks 8 and 64 pays Σ rank, not (number of segments) × 64: the rank-64 segment becomes
 * several sub-segments over the same tokens, whose expanded rows the graph adds into the same
 * output rows (ScatterND add). Rows past an adapter's rank in its last chunk read the zero page;
 * token rows past a sequence's length repeat its last token and are dropped by selection in the
 * graph (`rowValid`), never by arithmetic: a poisoned adapter's NaN must not reach a real row.
 * `padRankTo` (the padded baseline, `--lora-mode padded`) makes every segment one chunk of that rank.
 */
export function packSegments(
  padRankTo: number | undefined,
  plan: StepPlan,
  m: TargetModule,
  /** The adapters not in a slot, each with its highest rank of module m over the layers. */
  gathered: ReadonlyMap<AdapterLayout, number>,
  numLayers: number,
  readsA: LoraRowReads,
  readsB: LoraRowReads,
  pageSize: number,
  feeds: Record<string, ort.Tensor>,
): PackedSegments {
  const segments: Array<{ adapter: AdapterLayout; first: number; n: number; rank: number }> = [];
  let t = 0;
  for (const s of plan.sequences) {
    if (s.adapter && gathered.has(s.adapter) && s.tokens.length > 0)
      segments.push({ adapter: s.adapter, first: t, n: s.tokens.length, rank: gathered.get(s.adapter)! });
    t += s.tokens.length;
  }
  const chunkRank = padRankTo ?? chooseChunkRank(segments.map((seg) => seg.rank));
  const subs: Array<{ segment: (typeof segments)[number]; firstRow: number }> = [];
  for (const segment of segments)
    for (let r = 0; r < Math.max(1, segment.rank); r += chunkRank) subs.push({ segment, firstRow: r });
  const G = Math.max(1, subs.length);
  const Sg = Math.max(1, ...segments.map((seg) => seg.n));
  const L = numLayers;
  const tokens = new BigInt64Array(G * Sg);
  const rows = new BigInt64Array(G * Sg);
  const rowValid = new Uint8Array(G * Sg);
  const aRows = zeroPageRows(L * G * chunkRank, readsA, pageSize);
  const bRows = zeroPageRows(L * G * chunkRank, readsB, pageSize);
  subs.forEach(({ segment: { adapter, first, n }, firstRow }, i) => {
    for (let j = 0; j < Sg; j++) {
      const token = BigInt(first + Math.min(j, n - 1));
      tokens[i * Sg + j] = token;
      rows[i * Sg + j] = token;
      rowValid[i * Sg + j] = j < n ? 1 : 0;
    }
    for (let l = 0; l < L; l++) {
      const placed = adapter.modules[l]?.[m];
      if (!placed) continue;
      const count = Math.min(chunkRank, placed.rank - firstRow);
      if (count <= 0) continue;
      const row = (l * G + i) * chunkRank;
      writeRowIds(aRows, row, placed.aPages, placed.pagesPerRowA, firstRow, count, readsA, pageSize);
      writeRowIds(bRows, row, placed.bPages, placed.pagesPerRowB, firstRow, count, readsB, pageSize);
    }
  });
  const names = loraInputNames(m);
  feeds[names.active] = new ort.Tensor('bool', new Uint8Array([subs.length > 0 ? 1 : 0]), []);
  feeds[names.aPages] = new ort.Tensor('int64', aRows, [L, G * chunkRank * readsA.chunksPerRow]);
  feeds[names.bPages] = new ort.Tensor('int64', bRows, [L, G * chunkRank * readsB.chunksPerRow]);
  feeds[names.tokens] = new ort.Tensor('int64', tokens, [G * Sg]);
  feeds[names.groups] = new ort.Tensor('int64', BigInt64Array.of(BigInt(G)), [1]);
  feeds[names.rows] = new ort.Tensor('int64', rows, [G * Sg, 1]);
  feeds[names.rowValid] = new ort.Tensor('bool', rowValid, [G * Sg, 1]);
  return { subSegments: G, chunkRank, rowsPerSegment: Sg };
}

/**
 * The chunk rank that minimises Σ (rows computed + per-chunk overhead) over the segments: one of
 * the segments' own ranks or a power of two between 4 and the highest. Uniform ranks give their
 * rank (one chunk per segment, no padding).
 */
export function chooseChunkRank(ranks: readonly number[]): number {
  const positive = ranks.filter((r) => r > 0);
  if (positive.length === 0) return 1;
  const highest = Math.max(...positive);
  const candidates = new Set(positive);
  for (let c = 4; c < highest; c *= 2) candidates.add(c);
  let best = highest;
  let bestCost = Number.POSITIVE_INFINITY;
  for (const c of [...candidates].sort((a, b) => b - a)) {
    let cost = 0;
    for (const r of positive) cost += Math.ceil(r / c) * (c + CHUNK_OVERHEAD_ROWS);
    if (cost < bestCost) {
      best = c;
      bestCost = cost;
    }
  }
  return best;
}

/** The highest rank of module m over the adapter's layers (0 where it has none). */
export function moduleMaxRank(adapter: AdapterLayout, m: TargetModule): number {
  return Math.max(0, ...adapter.modules.map((layer) => layer[m]?.rank ?? 0));
}

/** Row ids of `numRows` rank-rows that all read the zero page (a pool view's first rows). */
function zeroPageRows(numRows: number, reads: LoraRowReads, pageSize: number): BigInt64Array {
  const ids = new BigInt64Array(numRows * reads.chunksPerRow);
  if (ids.length === 0) return ids;
  // Row ids are below 2^32 (pool elements / view width): written as the low words of the int64s
  // (little-endian), no BigInt made per element — a step packs tens of thousands of them.
  const words = lowWords(ids);
  const perPage = pageSize / reads.width;
  for (let c = 0; c < reads.chunksPerRow; c++)
    words[2 * c] = ZERO_PAGE * perPage + ((c * reads.width) % pageSize) / reads.width;
  // The first row's pattern, doubled until it fills the array.
  for (let filled = reads.chunksPerRow; filled < ids.length; filled *= 2)
    ids.copyWithin(filled, 0, Math.min(filled, ids.length - filled));
  return ids;
}

/** The low 32-bit words of an int64 array's elements (at even indices; the high words stay 0). */
function lowWords(ids: BigInt64Array): Uint32Array {
  return new Uint32Array(ids.buffer, ids.byteOffset, ids.length * 2);
}

/** Writes the pool-view row ids of rank-rows [fromRow, fromRow + count) at `firstRow`. */
function writeRowIds(
  ids: BigInt64Array,
  firstRow: number,
  pages: Int32Array,
  pagesPerRow: number,
  fromRow: number,
  count: number,
  reads: LoraRowReads,
  pageSize: number,
): void {
  const words = lowWords(ids);
  const perPage = pageSize / reads.width;
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < reads.chunksPerRow; c++) {
      const element = c * reads.width;
      const page = pages[(fromRow + r) * pagesPerRow + Math.floor(element / pageSize)];
      words[2 * ((firstRow + r) * reads.chunksPerRow + c)] =
        page * perPage + (element % pageSize) / reads.width;
    }
  }
}
