import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  syntheticConfig,
  TINY_SPEC,
  writeSyntheticAdapter,
  writeSyntheticModel,
} from '../../model/synthetic.js';
import { greedySampling } from '../../scheduler/request.js';
import { buildServingStack, type ServingStack } from '../../server/serving-stack.js';

const NUM_ADAPTERS = 2000;
let root: string;
let stack: ServingStack;
let startSeconds: number;
let rssGrowthBytes: number;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'loom-many-'));
  const modelDir = join(root, 'model');
  await writeSyntheticModel(modelDir, TINY_SPEC);
  const config = syntheticConfig(TINY_SPEC);
  const folder = join(root, 'adapters');
  // One adapter written, the rest copied: 2,000 real PEFT directories in about a second.
  const first = join(folder, 'ad-0000');
  await writeSyntheticAdapter(first, config, {
    name: 'x',
    rank: 2,
    alpha: 4,
    targetModules: ['q_proj', 'v_proj'],
    seed: 1,
  });
  for (let i = 1; i < NUM_ADAPTERS; i += 100)
    await Promise.all(
      Array.from({ length: Math.min(100, NUM_ADAPTERS - i) }, (_, k) =>
        cp(first, join(folder, `ad-${String(i + k).padStart(4, '0')}`), { recursive: true }),
      ),
    );
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  stack = await buildServingStack(
    {
      modelDir,
      loraModules: [],
      loraDir: folder,
      servedModelName: null,
      maxModelLen: 64,
      maxNumSeqs: 8,
      maxNumBatchedTokens: 128,
      engine: 'reference',
      poolSize: '4MiB',
      chatTemplateFile: null,
      seed: 1,
    },
    { info: () => {} },
  );
  startSeconds = (performance.now() - started) / 1000;
  rssGrowthBytes = process.memoryUsage().rss - rssBefore;
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await rm(root, { recursive: true, force: true });
});

describe(`${NUM_ADAPTERS} adapters from --lora-dir`, () => {
  it('start in seconds, read no weights, and keep RSS flat', () => {
    const adapters = stack.scheduler.adapters.list();
    expect(adapters).toHaveLength(NUM_ADAPTERS);
    expect(adapters.every((a) => a.tier === 'disk')).toBe(true);
    // Generous bounds for a shared 2-core machine; bench/ records the measured figures.
    expect(startSeconds).toBeLessThan(20);
    expect(rssGrowthBytes).toBeLessThan(256 * 1024 ** 2);
  });

  it('serves any of them on first use, and one added to the folder after start-up', async () => {
    const submit = async (adapter: string) => {
      const stream = stack.scheduler.submit({
        requestId: adapter,
        promptTokens: [1, 40, 41, 42],
        adapter,
        sampling: greedySampling(3, { ignoreEos: true }),
      });
      for await (const _delta of stream);
      return stream.completionTokens;
    };
    expect(await stack.scheduler.adapters.resolve('ad-1999')).toBe(true);
    expect(await submit('ad-1999')).toBe(3);
    expect(stack.scheduler.adapters.list().find((a) => a.name === 'ad-1999')?.tier).toBe('pool');

    expect(await stack.scheduler.adapters.resolve('ad-late')).toBe(false);
    await cp(join(root, 'adapters', 'ad-0000'), join(root, 'adapters', 'ad-late'), { recursive: true });
    expect(await stack.scheduler.adapters.resolve('ad-late')).toBe(true);
    expect(await submit('ad-late')).toBe(3);
    expect(await stack.scheduler.adapters.resolve('../adapters/ad-0000')).toBe(false);
  });
});
