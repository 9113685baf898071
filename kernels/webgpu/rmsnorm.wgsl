// Hugging Face LlamaRMSNorm per row: y = weight · (x / sqrt(mean(x²) + eps)). One 64-lane
// workgroup per row; `add_rmsnorm` first folds a residual branch into the stream (h += delta,
// stored back) so the residual add costs no extra pass over the activations.

struct Params {
  hidden4: u32,
  eps: f32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> h: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> delta: array<vec4<f32>>;

var<workgroup> partial: array<f32, 64>;

fn normalise(row: u32, lane: u32, sumSquares: f32) {
  partial[lane] = sumSquares;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let inverseRms = 1.0 / sqrt(partial[0] / f32(p.hidden4 * 4u) + p.eps);
  let base = row * p.hidden4;
  for (var i = lane; i < p.hidden4; i += 64u) {
    y[base + i] = weight[i] * (h[base + i] * inverseRms);
  }
}

@compute @workgroup_size(64)
fn rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let base = wg.x * p.hidden4;
  var s = 0.0;
  for (var i = lane; i < p.hidden4; i += 64u) {
    let v = h[base + i];
    s += dot(v, v);
  }
  normalise(wg.x, lane, s);
}

@compute @workgroup_size(64)
fn add_rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let base = wg.x * p.hidden4;
  var s = 0.0;
  for (var i = lane; i < p.hidden4; i += 64u) {
    let v = h[base + i] + delta[base + i];
    h[base + i] = v;
    s += dot(v, v);
  }
  normalise(wg.x, lane, s);
}
