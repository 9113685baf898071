// S-LoRA shrink: v[vOffset[t] + r] = Σ_k x[t, k] · A_r[k], every token gathering its own
// adapter's rank-rows of A from pool pages (layout: memory/adapter-layout.ts). Nothing is padded
// to a maximum rank: each invocation is one (token tile, rank-row) of the token's adapter.
//
// Ranks, scales and pages come from the adapter-slot table (adapter-slots.ts), written once per
// adapter placement: entry p.entry of slot s holds {rank, scale bits, A ref, B ref} at
// slots[s · p.slotWords + p.entry]; a ref with the top bit set is the first of consecutive
// pages, otherwise an offset into slotPages. The per-step buffer `tokens` is the same for every
// layer and module (lora-meta.ts): per token {slot, vOffset} from 0, then work items from
// p.itemsAt:
//   mbgmv: one word per v element: its token (the rank-row is the element minus vOffset);
//   mbgmm: three words (first token, tokens in tile ≤ 4, rank-row) per item, the tile's tokens
//          consecutive and sharing one adapter, so each A element loaded serves 4 rows.
// Items run to the adapter's largest module rank; rows past this module's rank return at once.
//
// mbgmv_split is mbgmv for hardware adapters: one workgroup per v element, its 64 lanes splitting
// the dot product (coalesced reads of the A row and of x), partials summed in workgroup memory.
// mbgmv gives one invocation a whole 2048-long dot product: at decode that is a few thousand
// invocations, too few to fill a GPU (82 µs for 64 tokens × rank 16 on an H200).
//
// The pool may span several bindings (chunks of chunkPages pages); one dispatch binds
// {{POOL_CHUNKS}} consecutive chunks from firstChunk (pool_0 …, read through pool_load) and adds
// the part of each dot product whose pages lie in them. The first dispatch of a step assigns v,
// later ones add to it.

struct Params {
  numItems: u32,
  inF4: u32,
  pageSize4: u32,
  pagesPerRowA: u32,
  itemsAt: u32,
  groupsX: u32,
  firstChunk: u32,
  chunkPages: u32,
  accumulate: u32,
  entry: u32,
  slotWords: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> slots: array<u32>;
@group(0) @binding(4) var<storage, read> slotPages: array<u32>;
{{POOL_BINDINGS}}

{{POOL_LOAD}}

fn item_index(gid: vec3<u32>) -> u32 {
  return gid.y * p.groupsX * 64u + gid.x;
}

/** Word of token t's adapter's entry for this (layer, module) in the slot table. */
fn entry_of(t: u32) -> u32 {
  return tokens[t * 2u] * p.slotWords + p.entry;
}

/** Page i of the block a pages ref names. */
fn page_at(block: u32, i: u32) -> u32 {
  if ((block & 0x80000000u) != 0u) {
    return (block & 0x7fffffffu) + i;
  }
  return slotPages[block + i];
}

const NONE = 0xffffffffu;

/** Place of `page`'s chunk in this dispatch's window, or NONE when the page lies elsewhere. */
fn bound_chunk(page: u32) -> u32 {
  let chunk = page / p.chunkPages;
  if (chunk < p.firstChunk || chunk - p.firstChunk >= {{POOL_CHUNKS}}u) {
    return NONE;
  }
  return chunk - p.firstChunk;
}

/**
 * Σ over this dispatch's chunks of x[xBase + k] · A_r[k] for k ≡ first (mod step): rank-row r of
 * the A block `aRef` names (step 1 for a whole dot product, 64 for one lane's share).
 */
fn row_dot(aRef: u32, r: u32, xBase: u32, first: u32, step: u32) -> vec4<f32> {
  let firstPage = r * p.pagesPerRowA;
  var acc = vec4<f32>(0.0);
  for (var pg = 0u; pg < p.pagesPerRowA; pg++) {
    let page = page_at(aRef, firstPage + pg);
    let k = bound_chunk(page);
    if (k == NONE) {
      continue;
    }
    let base = (page % p.chunkPages) * p.pageSize4;
    let k0 = pg * p.pageSize4;
    let n = min(p.pageSize4, p.inF4 - k0);
    for (var j = first; j < n; j += step) {
      acc += x[xBase + k0 + j] * pool_load(k, base + j);
    }
  }
  return acc;
}

fn store(at: u32, value: f32) {
  if (p.accumulate != 0u) {
    v[at] += value;
  } else {
    v[at] = value;
  }
}

@compute @workgroup_size(64)
fn mbgmv(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = item_index(gid);
  if (i >= p.numItems) {
    return;
  }
  let t = tokens[p.itemsAt + i];
  let r = i - tokens[t * 2u + 1u];
  let e = entry_of(t);
  if (r >= slots[e]) {
    return;
  }
  let acc = row_dot(slots[e + 2u], r, t * p.inF4, 0u, 1u);
  store(i, acc.x + acc.y + acc.z + acc.w);
}

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn mbgmv_split(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  // One item per workgroup; no early return before the barriers: every lane must reach them.
  let i = group.y * p.groupsX + group.x;
  var acc = vec4<f32>(0.0);
  var live = false;
  if (i < p.numItems) {
    let t = tokens[p.itemsAt + i];
    let r = i - tokens[t * 2u + 1u];
    let e = entry_of(t);
    if (r < slots[e]) {
      live = true;
      acc = row_dot(slots[e + 2u], r, t * p.inF4, lane, 64u);
    }
  }
  partial[lane] = acc.x + acc.y + acc.z + acc.w;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (lane == 0u && live) {
    store(i, partial[0]);
  }
}

@compute @workgroup_size(64)
fn mbgmm(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = item_index(gid);
  if (i >= p.numItems) {
    return;
  }
  let t0 = tokens[p.itemsAt + i * 3u];
  let count = tokens[p.itemsAt + i * 3u + 1u];
  let r = tokens[p.itemsAt + i * 3u + 2u];
  let e = entry_of(t0);
  if (r >= slots[e]) {
    return;
  }
  let aRef = slots[e + 2u];
  let firstPage = r * p.pagesPerRowA;
  // Rows past the tile's end re-read its last row (always valid) and are never written.
  let x0 = t0 * p.inF4;
  let x1 = (t0 + min(1u, count - 1u)) * p.inF4;
  let x2 = (t0 + min(2u, count - 1u)) * p.inF4;
  let x3 = (t0 + min(3u, count - 1u)) * p.inF4;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  for (var pg = 0u; pg < p.pagesPerRowA; pg++) {
    let page = page_at(aRef, firstPage + pg);
    let c = bound_chunk(page);
    if (c == NONE) {
      continue;
    }
    let base = (page % p.chunkPages) * p.pageSize4;
    let k0 = pg * p.pageSize4;
    let n = min(p.pageSize4, p.inF4 - k0);
    for (var j = 0u; j < n; j++) {
      let w = pool_load(c, base + j);
      let k = k0 + j;
      a0 += x[x0 + k] * w;
      a1 += x[x1 + k] * w;
      a2 += x[x2 + k] * w;
      a3 += x[x3 + k] * w;
    }
  }
  var sums = array<f32, 4>(
    a0.x + a0.y + a0.z + a0.w,
    a1.x + a1.y + a1.z + a1.w,
    a2.x + a2.y + a2.z + a2.w,
    a3.x + a3.y + a3.z + a3.w,
  );
  for (var j = 0u; j < count; j++) {
    store(tokens[(t0 + j) * 2u + 1u] + r, sums[j]);
  }
}
