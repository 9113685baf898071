// The residual stream's add: h += delta, elementwise over vec4s.

struct Params {
  n4: u32,
  groupsX: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> h: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> delta: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.groupsX * 64u + gid.x;
  if (i < p.n4) {
    h[i] += delta[i];
  }
}
