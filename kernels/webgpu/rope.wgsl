// RoPE in place on x[T, numHeads · headDim], Hugging Face's rotate_half pairing (i with
// i + headDim/2). cos/sin come from a host table built in f64 from the f32 angle
// position · invFreq[i], as the reference does: device sin/cos of angles in the thousands of
// radians are far less accurate than the 1e-5 parity the engines promise.

struct Params {
  numTokens: u32,
  numHeads: u32,
  half: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> trig: array<vec2<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y;
  if (gid.x >= p.numHeads * p.half || t >= p.numTokens) {
    return;
  }
  let head = gid.x / p.half;
  let i = gid.x % p.half;
  let cs = trig[positions[t] * p.half + i];
  let base = (t * p.numHeads + head) * 2u * p.half;
  let first = x[base + i];
  let second = x[base + i + p.half];
  x[base + i] = first * cs.x - second * cs.y;
  x[base + i + p.half] = second * cs.x + first * cs.y;
}
