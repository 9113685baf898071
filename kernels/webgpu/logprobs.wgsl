// Log-probabilities of one logit row per workgroup, so a step reads back k values per row, not
// the vocabulary. Same definition as kernels/logprobs.ts (vLLM's raw_logprobs): log-softmax of
// the raw logits, logprob(t) = logit(t) − (max + log Σ exp(logit − max)); the row's scored token
// (a prompt token, or the id sample.wgsl drew for the row) and its `k` most likely tokens in
// descending-logit order, ties to the lower index (k rounds of a workgroup argmax over the
// tokens after the previous pick, so nothing is sorted or kept per lane).
//
// Record of row r at out[r · stride]: scored token id, its logprob (f32 bits), its rank (vLLM's:
// how many tokens have a logit ≥ its own, itself included), then k pairs (id, logprob bits). A
// row whose k is SKIP writes only the scored id.

struct Params {
  vocab: u32,
  /** u32 words per row's record: 3 + 2 · the step's largest k. */
  stride: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
// Per row: the token to score (SAMPLED: the id sample.wgsl wrote for the row), and k (or SKIP).
@group(0) @binding(1) var<storage, read> requests: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> sampled: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> partialValue: array<f32, 64>;
var<workgroup> partialKey: array<u32, 64>;
var<workgroup> partialIndex: array<u32, 64>;
var<workgroup> chosen: u32;

const SAMPLED: u32 = 0xffffffffu;
const SKIP: u32 = 0xffffffffu;
const NONE: u32 = 0xffffffffu;

/** Order-preserving key of a logit: larger logit, larger key; NaN sorts below everything. */
fn order_key(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  if (x != x) {
    return 0u;
  }
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

/** (key, index) ranks before (otherKey, otherIndex): larger key, then lower index. */
fn ranks_before(key: u32, index: u32, otherKey: u32, otherIndex: u32) -> bool {
  return otherIndex == NONE || key > otherKey || (key == otherKey && index < otherIndex);
}

fn reduce_max(lane: u32, value: f32) -> f32 {
  partialValue[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partialValue[lane] = max(partialValue[lane], partialValue[lane + stride]);
    }
    workgroupBarrier();
  }
  let result = partialValue[0];
  workgroupBarrier();
  return result;
}

fn reduce_sum(lane: u32, value: f32) -> f32 {
  partialValue[lane] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partialValue[lane] += partialValue[lane + stride];
    }
    workgroupBarrier();
  }
  let result = partialValue[0];
  workgroupBarrier();
  return result;
}

/** The first token in (key desc, index asc) order strictly after (afterKey, afterIndex). */
fn next_in_order(base: u32, lane: u32, afterKey: u32, afterIndex: u32) -> u32 {
  var bestKey = 0u;
  var bestIndex = NONE;
  for (var i = lane; i < p.vocab; i += 64u) {
    let key = order_key(logits[base + i]);
    let isAfter = afterIndex == NONE || key < afterKey || (key == afterKey && i > afterIndex);
    if (isAfter && ranks_before(key, i, bestKey, bestIndex)) {
      bestKey = key;
      bestIndex = i;
    }
  }
  partialKey[lane] = bestKey;
  partialIndex[lane] = bestIndex;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let index = partialIndex[lane + stride];
      if (index != NONE && ranks_before(partialKey[lane + stride], index, partialKey[lane], partialIndex[lane])) {
        partialKey[lane] = partialKey[lane + stride];
        partialIndex[lane] = index;
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    chosen = partialIndex[0];
  }
  return workgroupUniformLoad(&chosen);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x;
  let base = row * p.vocab;
  let request = requests[row];
  let token = select(request.x, sampled[row], request.x == SAMPLED);
  let record = row * p.stride;
  if (request.y == SKIP) {
    if (lane == 0u) {
      out[record] = token;
    }
    return;
  }
  var localMax = -3.4e38;
  for (var i = lane; i < p.vocab; i += 64u) {
    let x = logits[base + i];
    if (x > localMax) {
      localMax = x;
    }
  }
  let rowMax = reduce_max(lane, localMax);
  let tokenLogit = logits[base + token];
  var localSum = 0.0;
  var localCount = 0u;
  for (var i = lane; i < p.vocab; i += 64u) {
    let x = logits[base + i];
    localSum += exp(x - rowMax);
    localCount += select(0u, 1u, x >= tokenLogit);
  }
  let logNorm = rowMax + log(reduce_sum(lane, localSum));
  // A count summed as f32 is exact: a vocabulary is far below 2^24 tokens.
  let rank = u32(reduce_sum(lane, f32(localCount)));
  if (lane == 0u) {
    out[record] = token;
    out[record + 1u] = bitcast<u32>(tokenLogit - logNorm);
    out[record + 2u] = rank;
  }
  var afterKey = 0u;
  var afterIndex = NONE;
  for (var r = 0u; r < request.y; r++) {
    let pick = next_in_order(base, lane, afterKey, afterIndex);
    if (pick == NONE) {
      break;
    }
    afterKey = order_key(logits[base + pick]);
    afterIndex = pick;
    if (lane == 0u) {
      out[record + 3u + 2u * r] = pick;
      out[record + 4u + 2u * r] = bitcast<u32>(logits[base + pick] - logNorm);
    }
  }
}
