import { f16ToF32, f32ToBf16, f32ToF16, type TensorDtype } from './float-convert.js';

let f16Table: Float32Array | null = null;

/** All 65536 half values, so decoding a big F16 tensor is one table lookup per element. */
export function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16ToF32(bits);
  }
  return f16Table;
}

/** Raw little-endian tensor elements → f32. F32 input is returned as is (no copy). */
export function toFloat32(raw: Float32Array | Uint16Array, dtype: TensorDtype): Float32Array {
  if (raw instanceof Float32Array) return raw;
  const out = new Float32Array(raw.length);
  decodeInto(raw, dtype, out);
  return out;
}

/** F16 or BF16 bit patterns → f32 values in `out` (at least as long as `raw`). */
export function decodeInto(raw: Uint16Array, dtype: TensorDtype, out: Float32Array): void {
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer, out.byteOffset, raw.length);
    for (let i = 0; i < raw.length; i++) bits[i] = raw[i] << 16;
  } else if (dtype === 'F16') {
    const table = halfTable();
    for (let i = 0; i < raw.length; i++) out[i] = table[raw[i]];
  } else throw new Error('F32 data held as 16-bit patterns');
}

/** f32 → the little-endian bytes of `dtype` (round to nearest even for F16 and BF16). */
export function fromFloat32(data: Float32Array, dtype: TensorDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const convert = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < data.length; i++) out[i] = convert(data[i]);
  return new Uint8Array(out.buffer);
}
