import type { TensorDtype } from './float-convert.js';
import { TARGET_MODULES, type TargetModule } from './llama-modules.js';
import type { LoraAdapter, LoraPair } from './lora-adapter.js';
import { fromFloat32, toFloat32 } from './tensor-codec.js';

/** A LoRA matrix as its file stores it: F16 and BF16 stay 2 bytes per element. */
export interface StoredMatrix {
  dtype: TensorDtype;
  data: Float32Array | Uint16Array;
}

/** A LoRA pair as its file stores it, with its module's rank and scale. */
export interface StoredLoraPair extends Omit<LoraPair, 'a' | 'b'> {
  a: StoredMatrix;
  b: StoredMatrix;
}

/**
 * An adapter's host copy in its file's dtype: thousands of adapters wait in host RAM, and a
 * TinyLlama-shaped rank-16 all-modules adapter is ~25 MB in f16 where f32 would be ~50 MB.
 * Widened to f32 only while it is written into pool pages.
 */
export interface StoredLoraAdapter extends Omit<LoraAdapter, 'layers'> {
  layers: Array<Partial<Record<TargetModule, StoredLoraPair>>>;
  /** Bytes of weights held. */
  numBytes: number;
}

/** The f32 adapter the engines write into pages (F32 matrices are shared, not copied). */
export function widenAdapter(stored: StoredLoraAdapter): LoraAdapter {
  const { numBytes: _bytes, ...meta } = stored;
  return {
    ...meta,
    layers: stored.layers.map((layer) => {
      const widened: Partial<Record<TargetModule, LoraPair>> = {};
      for (const m of TARGET_MODULES) {
        const pair = layer[m];
        if (pair)
          widened[m] = {
            ...pair,
            a: toFloat32(pair.a.data, pair.a.dtype),
            b: toFloat32(pair.b.data, pair.b.dtype),
          };
      }
      return widened;
    }),
  };
}

/**
 * An f32 adapter as a host copy: as is (no copy made) for adapters built in memory, or rounded to
 * F16/BF16 (round to nearest even), the host copy a file in that dtype would give.
 */
export function storeAdapter(adapter: LoraAdapter, dtype: TensorDtype = 'F32'): StoredLoraAdapter {
  const matrix = (m: Float32Array): StoredMatrix => {
    if (dtype === 'F32') return { dtype, data: m };
    const bytes = fromFloat32(m, dtype);
    return { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, m.length) };
  };
  let numBytes = 0;
  const layers = adapter.layers.map((layer) => {
    const stored: Partial<Record<TargetModule, StoredLoraPair>> = {};
    for (const m of TARGET_MODULES) {
      const pair = layer[m];
      if (!pair) continue;
      stored[m] = { ...pair, a: matrix(pair.a), b: matrix(pair.b) };
      numBytes += stored[m].a.data.byteLength + stored[m].b.data.byteLength;
    }
    return stored;
  });
  return { ...adapter, layers, numBytes };
}
