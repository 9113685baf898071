import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MergedLoraEngine } from '../../kernels/merged-lora-engine.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { greedyTexts } from './greedy-texts.js';
import { startTinyServer, TINY_ADAPTERS, type TinyServer } from './tiny-server.js';

const config = syntheticConfig(TINY_SPEC);

async function errorOf(res: Response): Promise<{ message: string; code: string }> {
  return ((await res.json()) as { error: { message: string; code: string } }).error;
}

describe('adapters that do not all fit: residency, eviction and prefetch on a real engine', () => {
  it('gives the same greedy texts with one adapter resident at a time as with all resident', async () => {
    const all = await startTinyServer('onnx');
    let expected: string[];
    try {
      expected = await greedyTexts(all.client);
      expect(all.stack.scheduler.stats().numResidentAdapters).toBe(TINY_ADAPTERS.length);
    } finally {
      await all.close();
    }
    const tight = await startTinyServer('onnx', { maxLoras: 1, maxCpuLoras: 1 });
    try {
      expect(await greedyTexts(tight.client)).toEqual(expected);
      const stats = tight.stack.scheduler.stats();
      expect(stats.numResidentAdapters).toBe(1);
      expect(stats.adapterCounters.numEvictions).toBeGreaterThanOrEqual(TINY_ADAPTERS.length - 1);
      expect(stats.numKvPages).toBe(0);
      expect(tight.stack.scheduler.adapters.list().every((a) => a.numPins === 0 && a.numRequests === 0)).toBe(
        true,
      );
    } finally {
      await tight.close();
    }
  });
});

describe('the S-LoRA benchmark baselines (--lora-mode)', () => {
  it('padded and merged serve the same greedy texts as batched adapters', async () => {
    const batched = await startTinyServer('onnx');
    let expected: string[];
    try {
      expected = await greedyTexts(batched.client);
    } finally {
      await batched.close();
    }
    for (const loraMode of ['padded', 'merged'] as const) {
      const baseline = await startTinyServer('onnx', { loraMode });
      try {
        expect(await greedyTexts(baseline.client)).toEqual(expected);
        if (loraMode === 'merged') {
          expect(baseline.llm.engine).toBeInstanceOf(MergedLoraEngine);
          // Requests for several adapters share steps: each adapter group was merged in turn.
          expect((baseline.llm.engine as MergedLoraEngine).numSwaps).toBeGreaterThan(TINY_ADAPTERS.length);
        }
      } finally {
        await baseline.close();
      }
    }
  });
});

describe('runtime adapter management (vLLM API)', () => {
  let server: TinyServer;
  let root: string;
  const post = (path: string, body: object) =>
    fetch(`${server.baseURL.replace(/\/v1$/, '')}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const complete = async (model: string, prompt = 'Once upon a time') =>
    (
      (await server.client.completions.create({
        model,
        prompt,
        temperature: 0,
        max_tokens: 8,
        ignore_eos: true,
      } as never)) as OpenAI.Completion
    ).choices[0].text;

  beforeAll(async () => {
    server = await startTinyServer('onnx', (dir) => ({ loraRoot: dir }));
    root = server.stack.loraRoot!;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('loads an adapter at run time, serves it, and refuses a second load of the name', async () => {
    const dir = join(server.root, 'late-adapter');
    await writeSyntheticAdapter(dir, config, {
      name: 'late',
      rank: 4,
      alpha: 8,
      targetModules: ['q_proj'],
      seed: 77,
    });
    const res = await post('/v1/load_lora_adapter', { lora_name: 'late', lora_path: dir });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Success: LoRA adapter 'late' added successfully.");
    expect(await complete('late')).not.toBe(await complete('tiny-base'));
    const models = await server.client.models.list();
    expect(models.data.map((m) => m.id)).toContain('late');
    const again = await post('/v1/load_lora_adapter', { lora_name: 'late', lora_path: dir });
    expect(again.status).toBe(400);
    expect((await errorOf(again)).message).toMatch(/already loaded/);
  });

  it('answers a bad adapter with 400 and the reason, and changes nothing', async () => {
    const before = server.stack.scheduler.adapters.list().map((a) => a.name);
    const corrupt = join(server.root, 'corrupt-adapter');
    await writeSyntheticAdapter(corrupt, config, {
      name: 'c',
      rank: 2,
      alpha: 2,
      targetModules: ['q_proj'],
      seed: 5,
    });
    await writeFile(join(corrupt, 'adapter_model.safetensors'), Buffer.from('not a safetensors file at all'));
    const wrongShape = join(server.root, 'wrong-shape-adapter');
    await writeSyntheticAdapter(wrongShape, syntheticConfig({ ...TINY_SPEC, hiddenSize: 32 }), {
      name: 'w',
      rank: 2,
      alpha: 2,
      targetModules: ['q_proj'],
      seed: 6,
    });
    for (const [path, reason] of [
      [corrupt, /adapter_model\.safetensors/],
      [wrongShape, /has shape/],
      [join(server.root, 'missing'), /does not exist/],
    ] as const) {
      const res = await post('/v1/load_lora_adapter', { lora_name: 'bad', lora_path: path });
      expect(res.status).toBe(400);
      expect((await errorOf(res)).message).toMatch(reason);
    }
    const unknownField = await post('/v1/load_lora_adapter', {
      lora_name: 'x',
      lora_path: corrupt,
      extra: 1,
    });
    expect(unknownField.status).toBe(400);
    expect(server.stack.scheduler.adapters.list().map((a) => a.name)).toEqual(before);
    expect(await complete('tiny-r4')).toBeTypeOf('string');
  });

  it('unloads with a stream in flight: the stream finishes, new requests get 404', async () => {
    const stream = await server.client.completions.create({
      model: 'tiny-r2',
      prompt: 'a long story',
      temperature: 0,
      max_tokens: 40,
      ignore_eos: true,
      stream: true,
    } as never);
    const iterator = (stream as unknown as AsyncIterable<OpenAI.Completion>)[Symbol.asyncIterator]();
    await iterator.next();
    const res = await post('/v1/unload_lora_adapter', { lora_name: 'tiny-r2' });
    expect(res.status).toBe(200);
    let finish: string | null = null;
    for (let chunk = await iterator.next(); !chunk.done; chunk = await iterator.next())
      finish = chunk.value.choices[0]?.finish_reason ?? finish;
    expect(finish).toBe('length');
    await expect(complete('tiny-r2')).rejects.toMatchObject({ status: 404 });
    expect((await post('/v1/unload_lora_adapter', { lora_name: 'tiny-r2' })).status).toBe(404);
    expect(server.stack.scheduler.stats().numKvPages).toBe(0);
  });

  it('replaces weights in place: the next request uses the new ones', async () => {
    const dir = join(server.root, 'policy-v1');
    await writeSyntheticAdapter(dir, config, {
      name: 'p',
      rank: 4,
      alpha: 8,
      targetModules: ['v_proj'],
      seed: 1,
    });
    expect((await post('/v1/load_lora_adapter', { lora_name: 'policy', lora_path: dir })).status).toBe(200);
    const v1 = await complete('policy');
    // Prefix blocks v1 computes for a long prompt (idle, cached, once its request ends).
    const cachedPages = () => server.stack.scheduler.stats().numPrefixCachedPages;
    const long = 'Once upon a time, in a land far away, '.repeat(6);
    const start = cachedPages();
    await complete('policy', long);
    const v1Pages = cachedPages() - start;
    expect(v1Pages).toBeGreaterThan(0);
    const dir2 = join(server.root, 'policy-v2');
    await writeSyntheticAdapter(dir2, config, {
      name: 'p',
      rank: 8,
      alpha: 8,
      targetModules: ['v_proj'],
      seed: 2,
    });
    const res = await post('/v1/load_lora_adapter', {
      lora_name: 'policy',
      lora_path: dir2,
      load_inplace: true,
    });
    expect(res.status).toBe(200);
    const v2 = await complete('policy');
    expect(v2).not.toBe(v1);
    // v1's blocks went with its weights: after v2 serves the same prompts, only v2's are cached.
    await complete('policy', long);
    expect(cachedPages() - start).toBe(v1Pages);
    // The same weights under a fresh name give the same text: nothing of v1 was reused.
    expect((await post('/v1/load_lora_adapter', { lora_name: 'policy-fresh', lora_path: dir2 })).status).toBe(
      200,
    );
    expect(await complete('policy-fresh')).toBe(v2);
  });

  it('refuses paths outside --lora-root, and everything when --lora-root is not set', async () => {
    const outside = await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: join(root, '..') });
    expect(outside.status).toBe(403);
    expect((await errorOf(outside)).code).toBe('path_outside_lora_root');
    const climbing = await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: '../../etc' });
    expect(climbing.status).toBe(403);
    const gated = await startTinyServer('reference');
    try {
      const res = await fetch(`${gated.baseURL.replace(/\/v1$/, '')}/v1/load_lora_adapter`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ lora_name: 'x', lora_path: gated.root }),
      });
      expect(res.status).toBe(403);
      expect((await errorOf(res)).message).toMatch(/--lora-root/);
    } finally {
      await gated.close();
    }
  });
});
