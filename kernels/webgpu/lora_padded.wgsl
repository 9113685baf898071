// The baseline the gather kernels are measured against (bench/webgpu-kernels.ts only): the same
// LoRA math as a padded batched matmul, every adapter's A and Bᵀ stored densely and padded with
// zero rows to the batch's largest rank R, every token doing R rank-rows of work.
//   shrink: v[t, r] = Σ_k x[t, k] · A[adapter[t], r, k]                  (r < R)
//   expand: y[t, o] += scale[t] · Σ_{r<R} v[t, r] · Bᵀ[adapter[t], r, o]
// Base-model tokens point at an all-zero adapter slot with scale 0, as a padded batch would.

struct Params {
  numTokens: u32,
  maxRank: u32,
  inF4: u32,
  out4: u32,
  groupsX: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> adapterOf: array<u32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bt: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> scales: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn shrink(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.groupsX * 64u + gid.x;
  if (i >= p.numTokens * p.maxRank) {
    return;
  }
  let t = i / p.maxRank;
  let r = i % p.maxRank;
  let aBase = (adapterOf[t] * p.maxRank + r) * p.inF4;
  let xBase = t * p.inF4;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < p.inF4; k++) {
    acc += x[xBase + k] * a[aBase + k];
  }
  v[i] = acc.x + acc.y + acc.z + acc.w;
}

@compute @workgroup_size(64)
fn expand(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o4 = gid.x;
  let t = gid.y;
  if (o4 >= p.out4 || t >= p.numTokens) {
    return;
  }
  let bBase = adapterOf[t] * p.maxRank * p.out4 + o4;
  let vBase = t * p.maxRank;
  var acc = vec4<f32>(0.0);
  for (var r = 0u; r < p.maxRank; r++) {
    acc += v[vBase + r] * bt[bBase + r * p.out4];
  }
  y[t * p.out4 + o4] += scales[t] * acc;
}
