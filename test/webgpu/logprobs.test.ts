import { describe, expect, it } from 'vitest';
import { rowLogprobs } from '../../kernels/logprobs.js';
import { createStorageBuffer, readU32, uploadBuffer } from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import {
  LogprobsKernel,
  logprobRecordWords,
  packLogprobRequests,
  type RowLogprobRequest,
  SAMPLED_TOKEN,
  unpackLogprobRecord,
} from '../../kernels/webgpu/logprobs.js';
import { openSuiteContext, randomArray, randomInt, seededRandom } from './gpu-test-kit.js';

const ctx = await openSuiteContext('logprobs');

describe.skipIf(!ctx)('logprobs.wgsl against kernels/logprobs.ts', () => {
  it('gives each row its scored token’s log-probability and rank, and its top k in order, ties to the lower id', async () => {
    const gpu = ctx!;
    const kernel = new LogprobsKernel(gpu);
    const rand = seededRandom(7);
    for (const vocab of [5, 100, 3000]) {
      const rows = 12;
      const logits = randomArray(rand, rows * vocab, 6);
      // Quantised rows tie often: ties must list the lower id first, as the host does.
      for (let r = 0; r < rows; r += 3)
        for (let i = 0; i < vocab; i++) logits[r * vocab + i] = Math.round(logits[r * vocab + i]);
      logits[2 * vocab + 1] = Number.NEGATIVE_INFINITY;
      const sampled = Uint32Array.from({ length: rows }, () => randomInt(rand, 0, vocab - 1));
      const requests: RowLogprobRequest[] = Array.from({ length: rows }, (_, r) => ({
        target: r % 2 === 0 ? SAMPLED_TOKEN : randomInt(rand, 0, vocab - 1),
        // Row 7 asks past vLLM's default 20, as a raised --max-logprobs lets it.
        topK: r === 5 ? null : Math.min(vocab, r === 7 ? 64 : r % 4 === 1 ? 20 : randomInt(rand, 0, 20)),
      }));
      const maxTopK = Math.max(...requests.map((q) => q.topK ?? 0));
      const stride = logprobRecordWords(maxTopK);
      const out = createStorageBuffer(gpu, rows * stride * 4, 'records');
      const buffers = [
        uploadBuffer(gpu, logits, 'logits'),
        uploadBuffer(gpu, packLogprobRequests(requests), 'requests'),
        uploadBuffer(gpu, sampled, 'sampled'),
      ];
      await runPass(gpu, (pass) =>
        kernel.encode(pass, buffers[0], rows, vocab, buffers[1], buffers[2], stride, out),
      );
      const words = await readU32(gpu, out, rows * stride);
      requests.forEach((q, r) => {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        const target = q.target === SAMPLED_TOKEN ? sampled[r] : q.target;
        const got = unpackLogprobRecord(words, r, stride, q.topK ?? 0);
        expect(got.tokenId).toBe(target);
        if (q.topK === null) return;
        const want = rowLogprobs(row, target, q.topK);
        expect(got.rank).toBe(want.rank);
        expect(Array.from(got.topIds)).toEqual(Array.from(want.topIds));
        expect(got.logprob).toBeCloseTo(want.logprob, 4);
        got.topLogprobs.forEach((lp, i) => {
          expect(lp).toBeCloseTo(want.topLogprobs[i], 4);
        });
      });
      for (const b of [...buffers, out]) b.destroy();
    }
  });
});
