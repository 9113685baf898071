// y[m, yCol + n] (= or +=) Σ_k x[m, k] · W[n, k] for few rows of x (decode), W as Hugging Face
// stores it ([out, in]), in f32, f16, bf16 or int8/int4 storage (weight4, from gemm.ts's
// weightWgsl), f32 accumulation. gemm.wgsl gives each invocation a whole 4×4 output tile and all of
// k: with 8 rows that is a few thousand invocations, too few to fill a GPU, each walking its own
// weight rows. Here a workgroup owns 4 output columns × 8 rows, its 64 lanes split k (neighbouring
// lanes read neighbouring vec4s of a weight row, so the reads coalesce), and the lanes' partial
// sums meet in workgroup memory. Barriers make it slow on a CPU adapter (lavapipe), so the launcher
// uses it on hardware adapters only.
{{ENABLE}}

struct Params {
  m: u32,
  n: u32,
  k4: u32,
  ldy: u32,
  yCol: u32,
  accumulate: u32,
  pad0: u32,
  pad1: u32,
  wk4: u32, // vec4s from one stored row of W to the next
  scaleStart: u32, // int8: the chunk's first block scale
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

{{WEIGHTS}}

const LANES: u32 = 64u;
const COLS: u32 = 4u;
const ROWS: u32 = 8u;
const OUTPUTS: u32 = 32u; // ROWS × COLS

var<workgroup> partial: array<array<f32, 32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let n0 = group.x * COLS;
  let m0 = group.y * ROWS;
  // Columns and rows past the edge re-read the last valid one and are never written; no early
  // return, since every lane must reach the barriers.
  var wr: array<u32, 4>;
  for (var j = 0u; j < COLS; j++) {
    wr[j] = min(n0 + j, p.n - 1u) * p.wk4;
  }
  var xr: array<u32, 8>;
  for (var i = 0u; i < ROWS; i++) {
    xr[i] = min(m0 + i, p.m - 1u) * p.k4;
  }
  var acc: array<f32, 32>;
  for (var k = lane; k < p.k4; k += LANES) {
    let w0 = weight4(wr[0] + k);
    let w1 = weight4(wr[1] + k);
    let w2 = weight4(wr[2] + k);
    let w3 = weight4(wr[3] + k);
    for (var i = 0u; i < ROWS; i++) {
      let a = x[xr[i] + k];
      acc[i * COLS] += dot(a, w0);
      acc[i * COLS + 1u] += dot(a, w1);
      acc[i * COLS + 2u] += dot(a, w2);
      acc[i * COLS + 3u] += dot(a, w3);
    }
  }
  for (var e = 0u; e < OUTPUTS; e++) {
    partial[lane][e] = acc[e];
  }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) {
      for (var e = 0u; e < OUTPUTS; e++) {
        partial[lane][e] += partial[lane + stride][e];
      }
    }
    workgroupBarrier();
  }
  if (lane < OUTPUTS) {
    let m = m0 + lane / COLS;
    let n = n0 + lane % COLS;
    if (m < p.m && n < p.n) {
      let at = m * p.ldy + p.yCol + n;
      if (p.accumulate != 0u) {
        y[at] += partial[0][lane];
      } else {
        y[at] = partial[0][lane];
      }
    }
  }
}
