// y[m, yCol + n] (= or +=) Σ_k x[m, k] · w[n, k]: activations times base weights in Hugging
// Face's [out, in] layout, {{WTYPE}} storage, f32 accumulation. Register-tiled without barriers
// (lavapipe turns barriers into coroutine switches): each invocation owns a 4×4 output tile, so
// every x and w vec4 it loads feeds four dot products.
{{ENABLE}}

struct Params {
  m: u32,
  n: u32,
  k4: u32,
  ldy: u32,
  yCol: u32,
  accumulate: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<{{WTYPE}}>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
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
    wr[i] = min(n0 + i, p.n - 1u) * p.k4;
  }
  var acc: array<vec4<f32>, 16>;
  for (var k = 0u; k < p.k4; k++) {
    let w0 = vec4<f32>(w[wr[0] + k]);
    let w1 = vec4<f32>(w[wr[1] + k]);
    let w2 = vec4<f32>(w[wr[2] + k]);
    let w3 = vec4<f32>(w[wr[3] + k]);
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
