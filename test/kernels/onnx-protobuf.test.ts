import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../kernels/onnx/onnx-model.js';
import { ProtoWriter } from '../../kernels/onnx/protobuf-writer.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('ProtoWriter', () => {
  it('encodes varints, negative int64s, floats and strings as protobuf does', () => {
    expect(hex(new ProtoWriter().varint(1, 150).finish())).toBe('089601');
    expect(hex(new ProtoWriter().varint(2, -1).finish())).toBe('10ffffffffffffffffff01');
    expect(hex(new ProtoWriter().varint(1, 2n ** 40n).finish())).toBe('08808080808020');
    expect(hex(new ProtoWriter().float(2, 1).finish())).toBe('150000803f');
    expect(hex(new ProtoWriter().string(4, 'Gemm').finish())).toBe('220447656d6d');
  });

  it('nests messages with their length and packs repeated varints', () => {
    const child = new ProtoWriter().varint(1, 3);
    expect(hex(new ProtoWriter().message(7, child).finish())).toBe('3a020803');
    expect(hex(new ProtoWriter().packedVarints(1, [1, 300]).finish())).toBe('0a0301ac02');
  });

  it('keeps large payloads intact across chunks', () => {
    const payload = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const out = new ProtoWriter().varint(1, 1).bytes(9, payload).varint(2, 5).finish();
    expect(out.length).toBe(2 + 3 + 1000 + 2);
    expect(Array.from(out.subarray(5, 1005))).toEqual(Array.from(payload));
    expect(hex(out.subarray(1005))).toBe('1005');
  });
});

describe('GraphBuilder', () => {
  it('builds a graph that onnxruntime loads and runs: inputs with symbolic dims, initializers, attributes', async () => {
    const g = new GraphBuilder('tiny');
    const x = g.input('x', 'float32', ['T', 3]);
    const w = g.input('w', 'float32', [2, 3]);
    const bias = g.constant({ type: 'float32', dims: [2], data: new Float32Array([0.5, -1]) }, 'bias');
    const y = g.op('Gemm', [x, w, bias], { transB: 1, alpha: { float: 2 } });
    const [left, right] = g.opMulti('Split', [y, g.ints([1, 1])], 2, { axis: 1 });
    g.op('LeakyRelu', [g.op('Sub', [left, right])], { alpha: { float: 0.25 } }, { outputNames: ['act'] });
    g.op('Transpose', [y], { perm: [1, 0] }, { outputNames: ['yt'] });
    g.output('act', 'float32', ['T', 1]);
    g.output('yt', 'float32', [2, 'T']);

    const session = await ort.InferenceSession.create(g.toBytes(), { intraOpNumThreads: 1 });
    const xs = new Float32Array([1, 2, 3, -1, 0, 4]);
    const ws = new Float32Array([1, 0, 1, 0, 1, -1]);
    const out = await session.run({
      x: new ort.Tensor('float32', xs, [2, 3]),
      w: new ort.Tensor('float32', ws, [2, 3]),
    });
    // y = 2·x·wᵀ + bias: row 0 = [2·4 + 0.5, 2·(-1) - 1], row 1 = [2·3 + 0.5, 2·(-4) - 1]
    expect(Array.from(out.yt.data as Float32Array)).toEqual([8.5, 6.5, -3, -9]);
    expect(out.yt.dims).toEqual([2, 2]);
    expect(Array.from(out.act.data as Float32Array)).toEqual([11.5, 15.5]);
    await session.release();
  });

  it('rejects a value name used twice and a non-integer int attribute', () => {
    const g = new GraphBuilder('dup');
    g.input('x', 'float32', [1]);
    expect(() => g.input('x', 'float32', [1])).toThrow(/used twice/);
    expect(() => g.op('LeakyRelu', ['x'], { alpha: 0.5 })).toThrow(/not an int/);
  });
});
