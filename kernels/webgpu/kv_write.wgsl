// Stores K and V of every token of the step into its sequence's pages for one layer, at the
// token's own position (layout: memory/kv-layout.ts). One invocation per (token, vec4 of kvDim).
// Where the pool spans several bindings, one dispatch per chunk stores what falls in it.

struct Params {
  numTokens: u32,
  numSequences: u32,
  kvDim4: u32,
  pageSize4: u32,
  tokensPerPage: u32,
  numLayers: u32,
  layer: u32,
  chunkStart: u32,
  chunkPages: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> batch: array<u32>;
@group(0) @binding(3) var<storage, read_write> pool: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= p.kvDim4 || t >= p.numTokens) {
    return;
  }
  // batch: tokenSeq [T], tokenPos [T], pageTableOffset [S], page tables.
  let pos = batch[p.numTokens + t];
  let table = 2u * p.numTokens + p.numSequences + batch[2u * p.numTokens + batch[t]];
  let slot = table + (pos / p.tokensPerPage * p.numLayers + p.layer) * 2u;
  let within = (pos % p.tokensPerPage) * p.kvDim4 + i;
  let kLocal = batch[slot] - p.chunkStart;
  if (kLocal < p.chunkPages) {
    pool[kLocal * p.pageSize4 + within] = k[t * p.kvDim4 + i];
  }
  let vLocal = batch[slot + 1u] - p.chunkStart;
  if (vLocal < p.chunkPages) {
    pool[vLocal * p.pageSize4 + within] = v[t * p.kvDim4 + i];
  }
}
