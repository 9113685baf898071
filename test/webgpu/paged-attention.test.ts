import { describe, expect, it } from 'vitest';
import { buildAttentionBatch } from '../../kernels/attention-batch.js';
import type { SequenceStep } from '../../kernels/engine.js';
import { writeKv } from '../../kernels/reference/kv-write.js';
import { pagedAttention } from '../../kernels/reference/paged-attention.js';
import { uploadAttentionBatch } from '../../kernels/webgpu/attention-meta.js';
import {
  createSplitBuffer,
  createStorageBuffer,
  readF32,
  readSplitF32,
  uploadBuffer,
  writeSplit,
} from '../../kernels/webgpu/buffers.js';
import { runPass } from '../../kernels/webgpu/dispatch.js';
import {
  attentionChunkPairs,
  chunksOfPairs,
  KvWriteKernel,
  PagedAttentionKernel,
} from '../../kernels/webgpu/paged-attention.js';
import { blocksFor, kvLayout } from '../../memory/kv-layout.js';
import { parseLlamaConfig } from '../../model/llama-config.js';
import {
  F32_TOLERANCE,
  openSuiteContext,
  randomArray,
  randomInt,
  relativeError,
  seededRandom,
  shuffle,
} from './gpu-test-kit.js';

const ctx = await openSuiteContext('paged_attention/kv_write');

const SHAPES = [
  { heads: 4, kvHeads: 2, headDim: 16, chunkPages: 0 },
  { heads: 4, kvHeads: 1, headDim: 32, chunkPages: 37 },
  { heads: 2, kvHeads: 2, headDim: 8, chunkPages: 0 },
];

describe.skipIf(!ctx)('kv_write + paged_attention against the reference', () => {
  for (const shape of SHAPES) {
    const split = shape.chunkPages ? `, pool split every ${shape.chunkPages} pages` : '';
    it(`${shape.heads} heads / ${shape.kvHeads} KV heads × ${shape.headDim}${split}: prefill and decode, shuffled pages`, async () => {
      const gpu = ctx!;
      const config = parseLlamaConfig({
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: shape.heads,
        num_key_value_heads: shape.kvHeads,
        head_dim: shape.headDim,
        intermediate_size: 128,
        vocab_size: 50,
      });
      const layout = kvLayout(config);
      const qWidth = shape.heads * shape.headDim;
      const rand = seededRandom(21 + shape.headDim);
      for (let trial = 0; trial < 4; trial++) {
        const decode = trial % 2 === 0;
        const numSeqs = randomInt(rand, 1, 5);
        const lengths = Array.from({ length: numSeqs }, () => ({
          start: randomInt(rand, 0, 25),
          count: decode ? 1 : randomInt(rand, 1, 9),
        }));
        const pagesNeeded = lengths.reduce(
          (s, l) => s + blocksFor(layout, l.start + l.count) * layout.pagesPerBlock,
          0,
        );
        const numPages = pagesNeeded + 1 + randomInt(rand, 0, 20);
        const free = shuffle(
          rand,
          Array.from({ length: numPages - 1 }, (_, i) => i + 1),
        );
        const sequences: SequenceStep[] = lengths.map((l, seqId) => ({
          seqId,
          tokens: new Int32Array(l.count),
          startPos: l.start,
          pageTable: Int32Array.from(
            free.splice(0, blocksFor(layout, l.start + l.count) * layout.pagesPerBlock),
          ),
          adapter: null,
          logits: 'last',
        }));
        const batch = buildAttentionBatch({ sequences });
        const T = batch.numTokens;
        const storage = randomArray(rand, numPages * layout.pageSize);
        storage.fill(0, 0, layout.pageSize);
        const q = randomArray(rand, T * qWidth, 2);
        const k = randomArray(rand, T * layout.kvDim, 2);
        const v = randomArray(rand, T * layout.kvDim);
        const layer = trial % 2;

        const pool = createSplitBuffer(
          gpu,
          numPages * layout.pageSize,
          layout.pageSize,
          'f32',
          'pool',
          shape.chunkPages ? shape.chunkPages * layout.pageSize * 4 : undefined,
        );
        writeSplit(gpu, pool, 0, storage);
        const expectedStorage = storage.slice();
        writeKv(expectedStorage, layout, batch, layer, k, v);
        const expected = pagedAttention(
          q,
          batch,
          expectedStorage,
          layout,
          layer,
          shape.heads,
          shape.kvHeads,
          shape.headDim,
        );

        const deviceBatch = uploadAttentionBatch(gpu, batch);
        const qBuf = uploadBuffer(gpu, q, 'q');
        const kBuf = uploadBuffer(gpu, k, 'k');
        const vBuf = uploadBuffer(gpu, v, 'v');
        const outBuf = createStorageBuffer(gpu, T * qWidth * 4, 'out');
        const kvWrite = new KvWriteKernel(gpu, pool, layout);
        const attention = new PagedAttentionKernel(
          gpu,
          pool,
          layout,
          shape.heads,
          shape.kvHeads,
          shape.headDim,
        );
        const pairs = attentionChunkPairs(pool, layout, batch, layer);
        if (shape.chunkPages) expect(pairs.length).toBeGreaterThan(1);
        await runPass(gpu, (pass) => {
          kvWrite.encode(pass, deviceBatch, layer, kBuf, vBuf, chunksOfPairs(pairs));
          attention.encode(pass, deviceBatch, layer, qBuf, outBuf, pairs);
        });
        expect(relativeError(await readSplitF32(gpu, pool, 0, storage.length), expectedStorage)).toBe(0);
        expect(relativeError(await readF32(gpu, outBuf, T * qWidth), expected)).toBeLessThan(F32_TOLERANCE);
      }
    });
  }
});
