import { afterAll } from 'vitest';
import {
  createWebGpuContext,
  NoWebGpuAdapterError,
  type WebGpuContext,
} from '../../kernels/webgpu/device.js';
import { mulberry32 } from '../../scheduler/prng.js';

/**
 * The device for a parity suite, or null (suite skipped with a message) where no adapter
 * exists. Under CI a missing adapter fails the run: CI installs lavapipe, so none means a
 * broken machine, not a reason to pass silently.
 */
export async function openTestContext(suite: string): Promise<WebGpuContext | null> {
  try {
    return await createWebGpuContext();
  } catch (error) {
    if (error instanceof NoWebGpuAdapterError && !process.env.CI) {
      console.warn(`${suite}: skipped, ${error.message}`);
      return null;
    }
    throw error;
  }
}

/** openTestContext for a whole test file: the device is destroyed after the file's tests. */
export async function openSuiteContext(suite: string): Promise<WebGpuContext | null> {
  const ctx = await openTestContext(suite);
  afterAll(() => ctx?.destroy());
  return ctx;
}

/** mulberry32 (scheduler/prng.ts): small, fast, and the same sequence on every machine. */
export const seededRandom = mulberry32;

export function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export function randomArray(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

export function shuffle<T>(rand: () => number, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** max |a − b| / max(1, max |ref|): absolute for small outputs, relative for large ones. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let maxDiff = 0;
  let maxRef = 1;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= maxDiff)) maxDiff = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxDiff / maxRef;
}

export const F32_TOLERANCE = 1e-5;
export const F16_TOLERANCE = 2e-2;
