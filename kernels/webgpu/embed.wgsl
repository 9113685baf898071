// y[t, :] = table[ids[t], :]. The table may span several bindings (TinyLlama's f32 table is
// 262 MB, twice lavapipe's binding limit): each dispatch sees one chunk of rows
// [rowStart, rowStart + rowCount) and copies only the tokens whose ids fall in it.
{{ENABLE}}

struct Params {
  numTokens: u32,
  hidden4: u32,
  rowStart: u32,
  rowCount: u32,
}
var<immediate> p: Params;

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<vec4<{{WTYPE}}>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= p.hidden4 || t >= p.numTokens) {
    return;
  }
  let row = ids[t] - p.rowStart;
  if (ids[t] < p.rowStart || row >= p.rowCount) {
    return;
  }
  y[t * p.hidden4 + i] = vec4<f32>(table[row * p.hidden4 + i]);
}
