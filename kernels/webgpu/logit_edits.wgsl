// A step's sparse logit edits (kernels/logit-adjustments.ts: logit_bias and min_tokens' mask,
// then repetition, then frequency and presence), applied in place to the logits the sampler reads,
// each original value kept so `restore` can put the raw logits back for the log-probabilities.
// One invocation per edit; a row lists each token once, so no two invocations touch one logit.

struct Params {
  count: u32,
  vocab: u32,
}
var<immediate> p: Params;

struct Edit {
  row: u32,
  token: u32,
  bias: f32,
  repetition: f32,
  subtract: f32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> edits: array<Edit>;
@group(0) @binding(2) var<storage, read_write> saved: array<f32>;

@compute @workgroup_size(64)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  if (e >= p.count) {
    return;
  }
  let edit = edits[e];
  let at = edit.row * p.vocab + edit.token;
  let raw = logits[at];
  saved[e] = raw;
  var l = raw + edit.bias;
  if (edit.repetition != 1.0) {
    l = select(l * edit.repetition, l / edit.repetition, l > 0.0);
  }
  logits[at] = l - edit.subtract;
}

@compute @workgroup_size(64)
fn restore(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  if (e >= p.count) {
    return;
  }
  let edit = edits[e];
  logits[edit.row * p.vocab + edit.token] = saved[e];
}
