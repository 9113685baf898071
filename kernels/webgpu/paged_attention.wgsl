// Causal attention through page tables (prefill and decode alike): token t attends to
// positions 0…tokenPos[t] of its own sequence, K/V read from `layer`'s pages wherever the page
// table puts them (layout: memory/kv-layout.ts). GQA: query head h reads KV head
// h / (numHeads / numKvHeads). One invocation per (token, head), online softmax in registers
// (q and the running output are HEAD_DIM4 vec4s each), no barriers.
//
// Where the pool spans several bindings, each dispatch binds the chunk of K pages p.kChunk and
// of V pages p.vChunk and folds in only the positions whose pages lie there; the running
// (max, denominator, output) carries between dispatches in `state` (flags bit 0: first
// dispatch, bit 1: last, which normalises into `out`).

const HEAD_DIM4: u32 = {{HEAD_DIM4}}u;

struct Params {
  numTokens: u32,
  numSequences: u32,
  numHeads: u32,
  group: u32,
  kvDim4: u32,
  pageSize4: u32,
  tokensPerPage: u32,
  numLayers: u32,
  layer: u32,
  scale: f32,
  chunkPages: u32,
  kChunk: u32,
  vChunk: u32,
  flags: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> batch: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> kPool: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> vPool: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let item = gid.x;
  if (item >= p.numTokens * p.numHeads) {
    return;
  }
  let t = item / p.numHeads;
  let h = item % p.numHeads;
  let qBase = item * HEAD_DIM4;
  let stateBase = item * (HEAD_DIM4 + 1u);
  var qr: array<vec4<f32>, HEAD_DIM4>;
  var acc: array<vec4<f32>, HEAD_DIM4>;
  var runningMax = -3.0e38;
  var denominator = 0.0;
  let first = (p.flags & 1u) != 0u;
  for (var d = 0u; d < HEAD_DIM4; d++) {
    qr[d] = q[qBase + d] * p.scale;
    acc[d] = select(state[stateBase + d], vec4<f32>(0.0), first);
  }
  if (!first) {
    let carried = state[stateBase + HEAD_DIM4];
    runningMax = carried.x;
    denominator = carried.y;
  }
  // batch: tokenSeq [T], tokenPos [T], pageTableOffset [S], page tables.
  let last = batch[p.numTokens + t];
  let table = 2u * p.numTokens + p.numSequences + batch[2u * p.numTokens + batch[t]];
  let headOffset = (h / p.group) * HEAD_DIM4;
  let kStart = p.kChunk * p.chunkPages;
  let vStart = p.vChunk * p.chunkPages;
  for (var pos = 0u; pos <= last; pos++) {
    let slot = table + (pos / p.tokensPerPage * p.numLayers + p.layer) * 2u;
    let kLocal = batch[slot] - kStart;
    let vLocal = batch[slot + 1u] - vStart;
    if (kLocal >= p.chunkPages || vLocal >= p.chunkPages) {
      continue;
    }
    let within = (pos % p.tokensPerPage) * p.kvDim4 + headOffset;
    let kBase = kLocal * p.pageSize4 + within;
    let vBase = vLocal * p.pageSize4 + within;
    var score = 0.0;
    for (var d = 0u; d < HEAD_DIM4; d++) {
      score += dot(qr[d], kPool[kBase + d]);
    }
    let newMax = max(runningMax, score);
    let correction = exp(runningMax - newMax);
    let weight = exp(score - newMax);
    denominator = denominator * correction + weight;
    for (var d = 0u; d < HEAD_DIM4; d++) {
      acc[d] = acc[d] * correction + weight * vPool[vBase + d];
    }
    runningMax = newMax;
  }
  if ((p.flags & 2u) != 0u) {
    for (var d = 0u; d < HEAD_DIM4; d++) {
      out[qBase + d] = acc[d] / denominator;
    }
  } else {
    for (var d = 0u; d < HEAD_DIM4; d++) {
      state[stateBase + d] = acc[d];
    }
    state[stateBase + HEAD_DIM4] = vec4<f32>(runningMax, denominator, 0.0, 0.0);
  }
}
