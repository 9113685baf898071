import { describe, expect, it } from 'vitest';
import { sampleToken } from '../../kernels/sample.js';
import { createStorageBuffer, readU32, uploadBuffer } from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { type RowSampling, SampleKernel } from '../../kernels/webgpu/sample.js';
import { openSuiteContext, randomArray, randomInt, seededRandom } from './gpu-test-kit.js';

const ctx = await openSuiteContext('sample');

describe.skipIf(!ctx)('sample (greedy, temperature, top-k, top-p) against the reference', () => {
  it('matches sampleToken token for token on random rows, ties included', async () => {
    const gpu = ctx!;
    const sampler = new SampleKernel(gpu);
    const rand = seededRandom(31);
    for (const vocab of [7, 100, 1000]) {
      const rows = 16;
      const logits = randomArray(rand, rows * vocab, 4);
      // Quantised rows make exact ties, which must break toward the lower index.
      for (let r = 0; r < rows; r += 3)
        for (let i = 0; i < vocab; i++) logits[r * vocab + i] = Math.round(logits[r * vocab + i]);
      const settings: RowSampling[] = Array.from({ length: rows }, (_, r) => ({
        temperature: r % 4 === 0 ? 0 : 0.3 + rand() * 1.5,
        topK: r % 3 === 1 ? randomInt(rand, 1, vocab + 2) : 0,
        topP: r % 2 === 1 ? 0.2 + rand() * 0.8 : 1,
        uniform: rand(),
      }));
      const logitBuf = uploadBuffer(gpu, logits, 'logits');
      const settingBuf = sampler.uploadSettings(settings);
      const idBuf = createStorageBuffer(gpu, rows * 4, 'ids');
      await runPass(gpu, (pass) => sampler.encode(pass, logitBuf, rows, vocab, settingBuf, idBuf));
      const ids = await readU32(gpu, idBuf, rows);
      const expected = settings.map((s, r) =>
        sampleToken(logits.subarray(r * vocab, (r + 1) * vocab), s, s.uniform),
      );
      expect(Array.from(ids)).toEqual(expected);
    }
    sampler.destroy();
  });
});
