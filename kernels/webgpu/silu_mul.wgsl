// SwiGLU's activation: y = silu(gate) · up, silu(g) = g / (1 + e^-g), elementwise over vec4s.

struct Params {
  n4: u32,
  groupsX: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> gate: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> up: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.groupsX * 64u + gid.x;
  if (i < p.n4) {
    let g = gate[i];
    y[i] = g / (vec4<f32>(1.0) + exp(-g)) * up[i];
  }
}
