// S-LoRA expand: y[t, o] += scale · Σ_r v[vOffset[t] + r] · Bᵀ_r[o], every token reading its own
// adapter's Bᵀ rank-rows from pool pages. One invocation owns 4 consecutive outputs (a vec4) of
// one token (mbgmv) or of a tile of ≤ 4 consecutive tokens sharing an adapter (mbgmm), looping
// over exactly this module's rank of that adapter: no padding to a maximum rank. Where the pool
// spans several bindings, one dispatch binds {{POOL_CHUNKS}} consecutive chunks from firstChunk
// (pool_0 …, read through pool_load) and adds the rank-rows whose pages lie in them.
//
// A workgroup covers 64 vec4s inside one page of the output row, so which page it reads, the
// rank and v are the same for all its lanes: the slot-table and page lookups are uniform loads,
// not per-lane gathers (that made the gather kernel slower than the padded one at uniform rank).
//
// tokens: as lora_shrink.wgsl ({slot, vOffset} per token from 0), and for mbgmm tiles of two
// words (first token, tokens in tile) from p.tilesAt. Rank, scale and B pages: the slot table,
// as lora_shrink.wgsl reads it.

struct Params {
  numRows: u32,
  out4: u32,
  pageSize4: u32,
  pagesPerRowB: u32,
  tilesAt: u32,
  firstChunk: u32,
  chunkPages: u32,
  blocksPerPage: u32,
  entry: u32,
  slotWords: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> v: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> slots: array<u32>;
@group(0) @binding(4) var<storage, read> slotPages: array<u32>;
{{POOL_BINDINGS}}

{{POOL_LOAD}}

const NONE = 0xffffffffu;

/** Place of `page`'s chunk in this dispatch's window, or NONE when the page lies elsewhere. */
fn bound_chunk(page: u32) -> u32 {
  let chunk = page / p.chunkPages;
  if (chunk < p.firstChunk || chunk - p.firstChunk >= {{POOL_CHUNKS}}u) {
    return NONE;
  }
  return chunk - p.firstChunk;
}

/** Page i of the block a pages ref names (top bit: consecutive pages from the low bits). */
fn page_at(block: u32, i: u32) -> u32 {
  if ((block & 0x80000000u) != 0u) {
    return (block & 0x7fffffffu) + i;
  }
  return slotPages[block + i];
}

/** (page of the output row, first vec4 inside it) of this lane; the lane also owns vec4 + 64. */
fn place(wg: vec3<u32>, lane: u32) -> vec2<u32> {
  let pageInRow = wg.x / p.blocksPerPage;
  return vec2<u32>(pageInRow, (wg.x % p.blocksPerPage) * 128u + lane);
}

@compute @workgroup_size(64)
fn mbgmv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let at = place(wg, lane);
  let within = at.y;
  let o4 = at.x * p.pageSize4 + within;
  let t = wg.y;
  if (within >= p.pageSize4 || o4 >= p.out4 || t >= p.numRows) {
    return;
  }
  let slot = tokens[t * 2u];
  if (slot == 0xffffffffu) {
    return;
  }
  let e = slot * p.slotWords + p.entry;
  let rank = slots[e];
  if (rank == 0u) {
    return;
  }
  // The second vec4 re-reads the first where it falls past the page or the row, unwritten.
  let second = select(0u, 64u, within + 64u < p.pageSize4 && o4 + 64u < p.out4);
  let bRef = slots[e + 3u];
  let vOff = tokens[t * 2u + 1u];
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var touched = false;
  for (var r = 0u; r < rank; r++) {
    let page = page_at(bRef, r * p.pagesPerRowB + at.x);
    let k = bound_chunk(page);
    if (k != NONE) {
      let vr = v[vOff + r];
      let base = (page % p.chunkPages) * p.pageSize4 + within;
      acc0 += vr * pool_load(k, base);
      acc1 += vr * pool_load(k, base + second);
      touched = true;
    }
  }
  if (touched) {
    let scale = bitcast<f32>(slots[e + 1u]);
    y[t * p.out4 + o4] += scale * acc0;
    if (second != 0u) {
      y[t * p.out4 + o4 + 64u] += scale * acc1;
    }
  }
}

@compute @workgroup_size(64)
fn mbgmm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let at = vec2<u32>(wg.x / p.blocksPerPage, (wg.x % p.blocksPerPage) * 64u + lane);
  let within = at.y;
  let o4 = at.x * p.pageSize4 + within;
  let tile = wg.y;
  if (within >= p.pageSize4 || o4 >= p.out4 || tile >= p.numRows) {
    return;
  }
  let t0 = tokens[p.tilesAt + tile * 2u];
  let count = tokens[p.tilesAt + tile * 2u + 1u];
  let e = tokens[t0 * 2u] * p.slotWords + p.entry;
  let rank = slots[e];
  let bRef = slots[e + 3u];
  let v0 = tokens[t0 * 2u + 1u];
  let v1 = tokens[(t0 + min(1u, count - 1u)) * 2u + 1u];
  let v2 = tokens[(t0 + min(2u, count - 1u)) * 2u + 1u];
  let v3 = tokens[(t0 + min(3u, count - 1u)) * 2u + 1u];
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  var touched = false;
  for (var r = 0u; r < rank; r++) {
    let page = page_at(bRef, r * p.pagesPerRowB + at.x);
    let k = bound_chunk(page);
    if (k == NONE) {
      continue;
    }
    let b = pool_load(k, (page % p.chunkPages) * p.pageSize4 + within);
    a0 += v[v0 + r] * b;
    a1 += v[v1 + r] * b;
    a2 += v[v2 + r] * b;
    a3 += v[v3 + r] * b;
    touched = true;
  }
  if (!touched) {
    return;
  }
  let scale = bitcast<f32>(slots[e + 1u]);
  var accs = array<vec4<f32>, 4>(a0, a1, a2, a3);
  for (var j = 0u; j < count; j++) {
    let at = (t0 + j) * p.out4 + o4;
    y[at] += scale * accs[j];
  }
}
