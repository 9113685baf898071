import { describe, expect, it } from 'vitest';
import { buildStepGraph } from '../../kernels/onnx/llama-graph.js';
import { protoFields, protoString } from '../../kernels/onnx/protobuf-reader.js';
import { ProtoWriter } from '../../kernels/onnx/protobuf-writer.js';
import { dropRepeatedInitializers } from '../../kernels/onnx/saved-model-repair.js';
import { kvLayout } from '../../memory/kv-layout.js';
import { TARGET_MODULES } from '../../model/llama-modules.js';
import { syntheticConfig, TINY_SPEC } from '../../model/synthetic.js';

/** A TensorProto: name (8) and raw_data (9). */
const tensor = (name: string, data: number[]) =>
  new ProtoWriter().string(8, name).bytes(9, Uint8Array.from(data));

/** ModelProto → graph → If node → then_branch graph holding `branch` initializers; one outer initializer. */
function model(branch: ProtoWriter[]): Uint8Array {
  const inner = new ProtoWriter().string(2, 'then');
  for (const t of branch) inner.message(5, t);
  const attribute = new ProtoWriter().string(1, 'then_branch').message(6, inner).varint(20, 5);
  const node = new ProtoWriter().string(1, 'cond').string(2, 'out').string(4, 'If').message(5, attribute);
  const graph = new ProtoWriter()
    .message(1, node)
    .string(2, 'main')
    .message(5, tensor('w', [1, 2]));
  return new ProtoWriter().varint(1, 8).message(7, graph).finish();
}

/** The names of the then_branch's initializers, read back. */
function branchInitializers(bytes: Uint8Array): string[] {
  const field = (message: Uint8Array, number: number) =>
    [...protoFields(message)].filter((f) => f.field === number);
  const graph = field(bytes, 7)[0].payload;
  const branch = field(field(field(graph, 1)[0].payload, 5)[0].payload, 6)[0].payload;
  return field(branch, 5).map((t) => protoString(field(t.payload, 8)[0]));
}

describe('dropRepeatedInitializers', () => {
  it("keeps the first of a subgraph's repeated initializers and every other field as it was", () => {
    const saved = model([tensor('c', [7]), tensor('d', [8]), tensor('c', [7])]);
    const { bytes, dropped } = dropRepeatedInitializers(saved);
    expect(dropped).toBe(1);
    expect(branchInitializers(saved)).toEqual(['c', 'd', 'c']);
    expect(branchInitializers(bytes)).toEqual(['c', 'd']);
    expect(bytes).toEqual(model([tensor('c', [7]), tensor('d', [8])]));
  });

  it('refuses to choose between two different initializers of one name', () => {
    expect(() => dropRepeatedInitializers(model([tensor('c', [7]), tensor('c', [9])]))).toThrow(
      /two different initializers named 'c'/,
    );
  });

  it('leaves a model without repeats byte for byte, the step graph with its nested Ifs included', () => {
    const config = syntheticConfig(TINY_SPEC);
    const graph = buildStepGraph(config, kvLayout(config), TARGET_MODULES, 'external');
    expect(dropRepeatedInitializers(graph)).toEqual({ bytes: graph, dropped: 0 });
  });

  it('refuses a truncated message', () => {
    expect(() => dropRepeatedInitializers(model([tensor('c', [7])]).subarray(0, 20))).toThrow(/protobuf/);
  });
});
