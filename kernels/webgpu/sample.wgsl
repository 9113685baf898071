// Picks one token per row of logits on the device, so a step reads back ids, not logits.
// Same definition as kernels/sample.ts: temperature 0 → argmax (lowest index on ties);
// otherwise weights exp((logit − max) / T), those below min-p dropped (zero), candidates in
// descending-logit order (ties to the lower index), top-k, then
// the shortest prefix reaching top-p of the kept mass, then the first candidate whose
// cumulative weight exceeds uniform · kept mass.
//
// No sort: every "first candidate in that order whose prefix reaches X" is a radix search, four
// bits per pass: first over the logit's order-preserving u32 key (8 passes), then over the index
// among tokens tied at that key. Each pass sums the row's weights into 16 bins per lane and
// reduces them across the workgroup. A prefix is named (key K, index J): tokens whose key > K,
// plus those whose key == K and index ≤ J.

struct Params {
  vocab: u32,
  /** 4 · (hex digits of vocab − 1): the index search's first digit. */
  indexShift: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
// Per row, two vec4s: temperature, top-k (bits of a u32), top-p, uniform; then min-p and three unused.
@group(0) @binding(1) var<storage, read> settings: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;

var<workgroup> partialValue: array<f32, 64>;
var<workgroup> partialIndex: array<u32, 64>;
var<workgroup> reduced: f32;
// 64 lanes × (16 bins + 1 "already inside" sum).
var<workgroup> binPartials: array<f32, 1088>;
var<workgroup> bins: array<f32, 17>;
var<workgroup> choice: u32;

const ALL: u32 = 0xffffffffu;

/** Order-preserving key of a logit: larger logit, larger key; NaN sorts below everything. */
fn order_key(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  if (x != x) {
    return 0u;
  }
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

fn in_prefix(i: u32, key: u32, k: u32, j: u32) -> bool {
  return key > k || (key == k && i <= j);
}

/** Count (mass = false) or weight (mass = true) of prefix (k, j) of row `base`. */
fn prefix_value(base: u32, lane: u32, mass: bool, k: u32, j: u32) -> f32 {
  var s = 0.0;
  for (var i = lane; i < p.vocab; i += 64u) {
    if (in_prefix(i, order_key(logits[base + i]), k, j)) {
      s += select(1.0, weights[base + i], mass);
    }
  }
  partialValue[lane] = s;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partialValue[lane] += partialValue[lane + stride];
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    reduced = partialValue[0];
  }
  return workgroupUniformLoad(&reduced);
}

fn reaches(value: f32, goal: f32, strict: bool) -> bool {
  return select(value >= goal, value > goal, strict);
}

/** Sums each lane's 16 bins and its inside sum across the workgroup into `bins`. */
fn reduce_bins(lane: u32, hist: array<f32, 16>, inside: f32) {
  for (var b = 0u; b < 16u; b++) {
    binPartials[lane * 17u + b] = hist[b];
  }
  binPartials[lane * 17u + 16u] = inside;
  workgroupBarrier();
  if (lane < 17u) {
    var s = 0.0;
    for (var l = 0u; l < 64u; l++) {
      s += binPartials[l * 17u + lane];
    }
    bins[lane] = s;
  }
  workgroupBarrier();
}

/**
 * One key digit: with the key's bits above `shift + 4` fixed to k's, the largest digit d such
 * that the tokens with key ≥ k | d << shift reach `goal`.
 */
fn key_digit(base: u32, lane: u32, mass: bool, k: u32, shift: u32, goal: f32, strict: bool) -> u32 {
  let hiShift = shift + 4u;
  let hiK = select(k >> hiShift, 0u, hiShift >= 32u);
  var hist: array<f32, 16>;
  var inside = 0.0;
  for (var i = lane; i < p.vocab; i += 64u) {
    let key = order_key(logits[base + i]);
    let w = select(1.0, weights[base + i], mass);
    let hi = select(key >> hiShift, 0u, hiShift >= 32u);
    if (hi > hiK) {
      inside += w;
    } else if (hi == hiK) {
      hist[(key >> shift) & 15u] += w;
    }
  }
  reduce_bins(lane, hist, inside);
  if (lane == 0u) {
    var acc = bins[16];
    var digit = 0u;
    for (var d = 15i; d >= 0i; d--) {
      acc += bins[d];
      if (reaches(acc, goal, strict)) {
        digit = u32(d);
        break;
      }
    }
    choice = k | (digit << shift);
  }
  return workgroupUniformLoad(&choice);
}

/**
 * One index digit among the tokens tied at key k: with the index's bits above `shift + 4` fixed
 * to j's, the smallest digit d such that the prefix (k, j + (d + 1) << shift − 1) reaches `goal`.
 */
fn index_digit(base: u32, lane: u32, mass: bool, k: u32, j: u32, shift: u32, goal: f32, strict: bool) -> u32 {
  var hist: array<f32, 16>;
  var inside = 0.0;
  let end = j + (16u << shift);
  for (var i = lane; i < p.vocab; i += 64u) {
    let key = order_key(logits[base + i]);
    let w = select(1.0, weights[base + i], mass);
    if (key > k || (key == k && i < j)) {
      inside += w;
    } else if (key == k && i < end) {
      hist[(i - j) >> shift] += w;
    }
  }
  reduce_bins(lane, hist, inside);
  if (lane == 0u) {
    var acc = bins[16];
    var digit = 15u;
    for (var d = 0u; d < 16u; d++) {
      acc += bins[d];
      if (reaches(acc, goal, strict)) {
        digit = d;
        break;
      }
    }
    choice = j + (digit << shift);
  }
  return workgroupUniformLoad(&choice);
}

/** The first candidate (key, index) whose prefix value reaches `goal`. */
fn find_first(base: u32, lane: u32, mass: bool, goal: f32, strict: bool) -> vec2<u32> {
  var k = 0u;
  for (var shift = 28i; shift >= 0i; shift -= 4i) {
    k = key_digit(base, lane, mass, k, u32(shift), goal, strict);
  }
  var j = 0u;
  for (var shift = i32(p.indexShift); shift >= 0i; shift -= 4i) {
    j = index_digit(base, lane, mass, k, j, u32(shift), goal, strict);
  }
  return vec2<u32>(k, j);
}

fn argmax(base: u32, lane: u32) -> u32 {
  var best = -3.4e38;
  var bestIndex = ALL;
  for (var i = lane; i < p.vocab; i += 64u) {
    let x = logits[base + i];
    if (x > best || (bestIndex == ALL && x == x)) {
      best = x;
      bestIndex = i;
    }
  }
  partialValue[lane] = best;
  partialIndex[lane] = bestIndex;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let v = partialValue[lane + stride];
      let i = partialIndex[lane + stride];
      let mine = partialIndex[lane];
      if (i != ALL && (mine == ALL || v > partialValue[lane] || (v == partialValue[lane] && i < mine))) {
        partialValue[lane] = v;
        partialIndex[lane] = i;
      }
    }
    workgroupBarrier();
  }
  return select(partialIndex[0], 0u, partialIndex[0] == ALL);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row = wg.x;
  let base = row * p.vocab;
  let setting = settings[row * 2u];
  let temperature = setting.x;
  let topK = bitcast<u32>(setting.y);
  let topP = setting.z;
  let uniform = setting.w;
  let minP = settings[row * 2u + 1u].x;
  let best = argmax(base, lane);
  let maxLogit = logits[base + best];
  workgroupBarrier();
  if (temperature <= 0.0) {
    if (lane == 0u) {
      ids[row] = best;
    }
    return;
  }
  for (var i = lane; i < p.vocab; i += 64u) {
    let w = exp((logits[base + i] - maxLogit) / temperature);
    weights[base + i] = select(w, 0.0, w < minP);
  }
  storageBarrier();
  workgroupBarrier();

  var kept = vec2<u32>(0u, p.vocab - 1u);
  if (topK > 0u && topK < p.vocab) {
    kept = find_first(base, lane, false, f32(topK), false);
  }
  var keptMass = prefix_value(base, lane, true, kept.x, kept.y);
  if (topP < 1.0) {
    kept = find_first(base, lane, true, topP * keptMass, false);
    keptMass = prefix_value(base, lane, true, kept.x, kept.y);
  }
  var pick = find_first(base, lane, true, uniform * keptMass, true);
  // Rounding can leave the last cumulative sum a hair below the threshold: stay inside the kept prefix.
  if (pick.x < kept.x || (pick.x == kept.x && pick.y > kept.y)) {
    pick = kept;
  }
  if (lane == 0u) {
    ids[row] = pick.y;
  }
}
