// y[m, yCol + n] (= or +=) Σ_k x[m, k] · W[n, k]: activations times base weights in f32, f16, bf16
// or int8/int4 storage (weight4, from gemm.ts's weightWgsl), f32 accumulation, register-tiled
// without barriers (lavapipe turns barriers into coroutine switches). Two storage layouts:
//   main_out_in: W as Hugging Face stores it, [out, in]; an invocation owns a 4×4 output tile,
//                so every x and w vec4 it loads feeds four dot products.
//   main_in_out: W transposed at upload, [in, out]; an invocation owns 4 outputs × 4 rows, and
//                neighbouring lanes read neighbouring weights (one vector load on a CPU, a
//                coalesced one on a GPU) while x is the same for every lane. A weight split by
//                k-ranges runs one dispatch per range, each adding its partial sums.
{{ENABLE}}

struct Params {
  m: u32,
  n: u32,
  k4: u32,
  ldy: u32,
  yCol: u32,
  accumulate: u32,
  xk4: u32,
  kStart4: u32,
  wk4: u32, // vec4s from one stored out-in row of W to the next
  scaleStart: u32, // int8: the chunk's first block scale
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

{{WEIGHTS}}

@compute @workgroup_size(64)
fn main_out_in(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (n0 >= p.n || m0 >= p.m) {
    return;
  }
  // Rows past the edge re-read the last valid row and are never written.
  var xr: array<u32, 4>;
  var wr: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xr[i] = min(m0 + i, p.m - 1u) * p.k4;
    wr[i] = min(n0 + i, p.n - 1u) * p.wk4;
  }
  var acc: array<vec4<f32>, 16>;
  for (var k = 0u; k < p.k4; k++) {
    let w0 = weight4(wr[0] + k);
    let w1 = weight4(wr[1] + k);
    let w2 = weight4(wr[2] + k);
    let w3 = weight4(wr[3] + k);
    for (var i = 0u; i < 4u; i++) {
      let a = x[xr[i] + k];
      acc[i * 4u] += a * w0;
      acc[i * 4u + 1u] += a * w1;
      acc[i * 4u + 2u] += a * w2;
      acc[i * 4u + 3u] += a * w3;
    }
  }
  for (var i = 0u; i < 4u; i++) {
    if (m0 + i >= p.m) {
      break;
    }
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j >= p.n) {
        break;
      }
      let s = acc[i * 4u + j];
      let at = (m0 + i) * p.ldy + p.yCol + n0 + j;
      let sum = s.x + s.y + s.z + s.w;
      if (p.accumulate != 0u) {
        y[at] += sum;
      } else {
        y[at] = sum;
      }
    }
  }
}

@compute @workgroup_size(64)
fn main_in_out(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n4 = gid.x;
  let m0 = gid.y * 4u;
  if (n4 * 4u >= p.n || m0 >= p.m) {
    return;
  }
  let width4 = p.n / 4u;
  var xr: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xr[i] = min(m0 + i, p.m - 1u) * p.xk4 + p.kStart4;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < p.k4; k++) {
    let row = k * 4u * width4 + n4;
    let w0 = weight4(row);
    let w1 = weight4(row + width4);
    let w2 = weight4(row + 2u * width4);
    let w3 = weight4(row + 3u * width4);
    for (var i = 0u; i < 4u; i++) {
      let a = x[xr[i] + k];
      acc[i] += a.x * w0 + a.y * w1 + a.z * w2 + a.w * w3;
    }
  }
  for (var i = 0u; i < 4u; i++) {
    if (m0 + i >= p.m) {
      break;
    }
    let at = (m0 + i) * p.ldy + p.yCol + n4 * 4u;
    for (var j = 0u; j < 4u; j++) {
      if (p.accumulate != 0u) {
        y[at + j] += acc[i][j];
      } else {
        y[at + j] = acc[i][j];
      }
    }
  }
}
