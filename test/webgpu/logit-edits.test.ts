import { describe, expect, it } from 'vitest';
import { adjustedLogits, type LogitAdjustments } from '../../kernels/logit-adjustments.js';
import { sampleToken } from '../../kernels/sample.js';
import { createStorageBuffer, readF32, readU32, uploadBuffer } from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import { LogitEditsKernel, packLogitEdits } from '../../kernels/webgpu/logit-edits.js';
import { type RowSampling, SampleKernel } from '../../kernels/webgpu/sample.js';
import { openSuiteContext, randomArray, randomInt, seededRandom, shuffle } from './gpu-test-kit.js';

const ctx = await openSuiteContext('logit edits');

/**
 * Sparse edits of a few distinct tokens of a row, in kernels/logit-adjustments.ts's form; with
 * `allow`, an allowOnly list too (a tenth of the vocabulary, half the edited tokens in it).
 */
function randomEdits(rand: () => number, vocab: number, allow = false): LogitAdjustments {
  const everyToken = () => Array.from({ length: vocab }, (_, i) => i);
  const n = randomInt(rand, 1, Math.min(vocab, 40));
  const tokens = shuffle(rand, everyToken()).slice(0, n);
  const allowed = allow
    ? new Set([...tokens.slice(0, n >> 1), ...shuffle(rand, everyToken()).slice(0, vocab / 10)])
    : null;
  return {
    tokens: Int32Array.from(tokens),
    bias: Float32Array.from(tokens, (_, i) =>
      i % 7 === 0 ? -Infinity : i % 3 === 0 ? (rand() - 0.5) * 20 : 0,
    ),
    repetition: Float32Array.from(tokens, (_, i) => (i % 2 === 0 ? 0.3 + rand() * 2 : 1)),
    subtract: Float32Array.from(tokens, () => (rand() < 0.5 ? rand() * 3 : 0)),
    allowOnly: allowed ? Int32Array.from(allowed) : null,
  };
}

describe.skipIf(!ctx)('logit_edits against kernels/logit-adjustments.ts (allowed_token_ids included)', () => {
  it('edits the listed logits of each row in place, and restore puts the raw ones back', async () => {
    const gpu = ctx!;
    const kernel = new LogitEditsKernel(gpu);
    const rand = seededRandom(7);
    const vocab = 300;
    const rows = 6;
    const logits = randomArray(rand, rows * vocab, 5);
    const edits = Array.from({ length: rows }, (_, r) =>
      r === 2 ? null : randomEdits(rand, vocab, r % 2 === 1),
    );
    const packed = packLogitEdits(edits, vocab)!;
    const logitBuf = uploadBuffer(gpu, logits, 'logits');
    const list = uploadBuffer(gpu, packed.words, 'edits');
    const saved = createStorageBuffer(gpu, packed.count * 4, 'saved');
    await runPass(gpu, (pass) =>
      kernel.encode('apply', pass, logitBuf, vocab, { list, saved, count: packed.count }),
    );
    const edited = await readF32(gpu, logitBuf, rows * vocab);
    for (let r = 0; r < rows; r++) {
      const raw = logits.subarray(r * vocab, (r + 1) * vocab);
      const want = edits[r] ? adjustedLogits(raw, edits[r]!) : raw;
      const got = edited.subarray(r * vocab, (r + 1) * vocab);
      // WGSL's f32 division may miss the rounded quotient by an ulp or two.
      for (let i = 0; i < vocab; i++)
        if (!(got[i] === want[i] || Math.abs(got[i] - want[i]) <= 3e-7 * Math.abs(want[i])))
          expect([r, i, got[i]]).toEqual([r, i, want[i]]);
    }
    expect(Array.from(edited)).not.toEqual(Array.from(logits));
    await runPass(gpu, (pass) =>
      kernel.encode('restore', pass, logitBuf, vocab, { list, saved, count: packed.count }),
    );
    expect(Array.from(await readF32(gpu, logitBuf, rows * vocab))).toEqual(Array.from(logits));
    expect(packLogitEdits([null, undefined], vocab)).toBeNull();
  });

  it('the sampler after it, with min-p, matches sampleToken on the host-edited rows', async () => {
    const gpu = ctx!;
    const kernel = new LogitEditsKernel(gpu);
    const sampler = new SampleKernel(gpu);
    const rand = seededRandom(11);
    const vocab = 500;
    const rows = 12;
    const logits = randomArray(rand, rows * vocab, 4);
    const edits = Array.from({ length: rows }, (_, r) =>
      r % 4 === 3 ? null : randomEdits(rand, vocab, r % 4 === 1),
    );
    const settings: RowSampling[] = Array.from({ length: rows }, (_, r) => ({
      temperature: r % 5 === 0 ? 0 : 0.4 + rand() * 1.2,
      topK: r % 3 === 1 ? randomInt(rand, 1, vocab) : 0,
      topP: r % 2 === 1 ? 0.3 + rand() * 0.7 : 1,
      minP: r % 3 === 2 ? rand() * 0.5 : 0,
      uniform: rand(),
    }));
    const packed = packLogitEdits(edits, vocab)!;
    const logitBuf = uploadBuffer(gpu, logits, 'logits');
    const list = uploadBuffer(gpu, packed.words, 'edits');
    const saved = createStorageBuffer(gpu, packed.count * 4, 'saved');
    const settingBuf = sampler.uploadSettings(settings);
    const idBuf = createStorageBuffer(gpu, rows * 4, 'ids');
    await runPass(gpu, (pass) => {
      kernel.encode('apply', pass, logitBuf, vocab, { list, saved, count: packed.count });
      sampler.encode(pass, logitBuf, rows, vocab, settingBuf, idBuf);
      kernel.encode('restore', pass, logitBuf, vocab, { list, saved, count: packed.count });
    });
    const ids = await readU32(gpu, idBuf, rows);
    const expected = settings.map((s, r) => {
      const raw = logits.subarray(r * vocab, (r + 1) * vocab);
      return sampleToken(edits[r] ? adjustedLogits(raw, edits[r]!) : raw, s, s.uniform);
    });
    expect(Array.from(ids)).toEqual(expected);
    // Without the edits the draws differ: they reached the sampler.
    const plain = settings.map((s, r) =>
      sampleToken(logits.subarray(r * vocab, (r + 1) * vocab), s, s.uniform),
    );
    expect(plain).not.toEqual(expected);
    sampler.destroy();
  });
});
