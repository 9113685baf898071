import { open } from 'node:fs/promises';
import { DTYPE_BYTES, type TensorDtype } from './float-convert.js';
import { fromFloat32 } from './tensor-codec.js';

/** One tensor to write: f32 data, stored as `dtype`. */
export interface TensorToWrite {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  data: Float32Array;
}

/**
 * Writes a `.safetensors` file: 8-byte little-endian header length, JSON header padded with
 * spaces to a multiple of 8 (so data stays aligned), then the tensors back to back in the given
 * order. Tensors are converted and written one at a time, so only one converted copy exists.
 */
export async function writeSafetensors(
  file: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`writeSafetensors: tensor "${t.name}" given twice`);
    names.add(t.name);
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length) {
      throw new Error(
        `writeSafetensors: tensor "${t.name}" has ${t.data.length} elements, shape [${t.shape.join(', ')}] needs ${elements}`,
      );
    }
    const bytes = elements * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const handle = await open(file, 'w');
  try {
    await handle.write(prefix);
    await handle.write(headerBytes);
    for (const t of tensors) await handle.write(fromFloat32(t.data, t.dtype));
  } finally {
    await handle.close();
  }
}
