import * as ort from 'onnxruntime-node';

/*
 * onnxruntime-common (1.30) stores 'float16' tensor data in the global Float16Array where one
 * exists (Node 24 has it) and converts Uint16Array data to it; onnxruntime-node's native binding
 * reads no Float16Array and sees 0 bytes ("not enough space: expected N, got 0"). Its choice of
 * typed array is fixed when the process makes its first Tensor, so that first Tensor is made here,
 * before any other, with the global hidden for the moment: 'float16' tensors then keep their
 * Uint16Array bits on every Node. Import this module before making tensors.
 */
const scope = globalThis as { Float16Array?: unknown };
const float16Array = scope.Float16Array;
if (float16Array !== undefined) {
  scope.Float16Array = undefined;
  try {
    new ort.Tensor('float32', new Float32Array(1), [1]);
  } finally {
    scope.Float16Array = float16Array;
  }
}

/** A 'float16' tensor over f16 bit patterns, read by onnxruntime-node as they are. */
export function float16Tensor(bits: Uint16Array, dims: readonly number[]): ort.Tensor {
  const tensor = new ort.Tensor('float16', bits, dims);
  if (tensor.data !== bits)
    throw new Error(
      'onnxruntime-common converted float16 data to Float16Array, which onnxruntime-node cannot read: a Tensor was made before kernels/onnx/float16-tensor.ts loaded',
    );
  return tensor;
}
