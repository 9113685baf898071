import { closeSync, openSync, readSync } from 'node:fs';
import { moduleWeightName, TARGET_MODULES } from './llama-modules.js';
import { ModelFormatError } from './model-format-error.js';
import { LM_HEAD_NAME } from './model-tensors.js';
import type { ModelWeights } from './model-weights.js';
import type { TensorFileRef } from './safetensors.js';

/** fs reads are capped near 2 GiB per call. */
const READ_CHUNK_BYTES = 1 << 30;

/** Reads an F32 tensor's bytes from its file into a new array (synchronously: it backs a property getter). */
export function readF32Sync(ref: TensorFileRef): Float32Array {
  const out = new Float32Array(ref.length / 4);
  const bytes = new Uint8Array(out.buffer);
  const fd = openSync(ref.file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(fd, bytes, done, Math.min(READ_CHUNK_BYTES, bytes.length - done), ref.offset + done);
      if (n === 0)
        throw new ModelFormatError(ref.file, `file ended after ${done} of ${bytes.length} bytes of a tensor`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Makes each linear weight (and an untied lm_head) that `files` places in an F32 safetensors file
 * a property read from that file on first access and kept after. An engine that reads the file
 * itself (the onnx engine hands it to onnxruntime, which maps it) never touches the property, so
 * no host copy is ever made; every other reader (reference, webgpu, merging) gets the same array
 * as an eager load would have given, a moment later.
 */
export function backLinearWeightsByFiles(
  weights: ModelWeights,
  files: ReadonlyMap<string, TensorFileRef>,
): void {
  weights.layers.forEach((layer, l) => {
    for (const m of TARGET_MODULES) {
      const ref = files.get(moduleWeightName(l, m));
      if (ref) defineLazy(layer.linear, m, ref);
    }
  });
  const head = files.get(LM_HEAD_NAME);
  if (head && !weights.config.tieWordEmbeddings) defineLazy(weights, 'lmHead', head);
}

function defineLazy<K extends string>(
  target: { [key in K]: Float32Array },
  key: K,
  ref: TensorFileRef,
): void {
  let loaded: Float32Array | undefined;
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get: () => {
      loaded ??= readF32Sync(ref);
      return loaded;
    },
    set: (value: Float32Array) => {
      loaded = value;
    },
  });
}
