import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import { StartupError } from '../../model/startup-error.js';
import { syntheticConfig, TINY_SPEC, writeSyntheticAdapter } from '../../model/synthetic.js';
import { buildServingStack, type StackOptions } from '../../server/serving-stack.js';
import { useTinyModel, writeTinyModel } from './tiny-server.js';

/** main.ts as a user runs it: its own process, its own exit code and stderr. */
function runMain(args: string[]): {
  child: ChildProcess;
  exited: Promise<{ code: number | null; stderr: string }>;
} {
  // Port 0 unless the test picks one: a server already on 8000 must not change the outcome.
  const port = args.includes('--port') ? [] : ['--port', '0'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', ...port, ...args], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (data) => {
    stderr += data;
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  return { child, exited };
}

function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '');
}

const model = useTinyModel();

/** buildServingStack's options for the tiny model on the reference engine, with `overrides`. */
const referenceStackOptions = (overrides: Partial<StackOptions> = {}): StackOptions => ({
  modelDir: model.modelDir,
  loraModules: [],
  servedModelName: null,
  maxModelLen: 256,
  maxNumSeqs: 4,
  maxNumBatchedTokens: 64,
  engine: 'reference',
  poolSize: '8MiB',
  chatTemplateFile: null,
  seed: null,
  ...overrides,
});

describe('server/main.ts start-up', () => {
  it('exits 1 with one line naming a missing model directory', async () => {
    const missing = join(model.root, 'no-such-model');
    const { code, stderr } = await runMain(['--model', missing]).exited;
    expect(code).toBe(1);
    const lines = stderrLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(missing);
  });

  it('exits 1 with one line naming a safetensors file whose header is corrupt', async () => {
    const { modelDir: corruptDir, root: corruptRoot } = await writeTinyModel();
    const file = join(corruptDir, 'model.safetensors');
    const handle = await open(file, 'r+');
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(1n << 40n);
    await handle.write(length, 0, 8, 0);
    await handle.close();
    const { code, stderr } = await runMain(['--model', corruptDir, '--engine', 'reference']).exited;
    await rm(corruptRoot, { recursive: true, force: true });
    expect(code).toBe(1);
    const lines = stderrLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
  });

  it('exits 1 with one line naming a linear weight that is NaN (checked on a worker while the engine is built)', async () => {
    const { modelDir: poisonedDir, root: poisonedRoot } = await writeTinyModel();
    const file = join(poisonedDir, 'model.safetensors');
    const tensors = [...(await readSafetensors(file))].map(([name, t]) => ({
      name,
      shape: t.shape,
      data: t.data,
    }));
    tensors.find((t) => t.name === 'model.layers.0.self_attn.o_proj.weight')!.data[3] = Number.NaN;
    await writeSafetensors(
      file,
      tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
    );
    const { code, stderr } = await runMain(['--model', poisonedDir, '--engine', 'onnx']).exited;
    await rm(poisonedRoot, { recursive: true, force: true });
    expect(code).toBe(1);
    const lines = stderrLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toContain('tensor "model.layers.0.self_attn.o_proj.weight" holds NaN at element 3');
  });

  it('exits 1 with one line naming an adapter whose shapes do not fit the model', async () => {
    const wrongDir = join(model.root, 'wrong-shape');
    const narrower = syntheticConfig({ ...TINY_SPEC, hiddenSize: 32 });
    await writeSyntheticAdapter(wrongDir, narrower, {
      name: 'wrong',
      rank: 2,
      alpha: 2,
      targetModules: ['q_proj'],
      seed: 3,
    });
    const { code, stderr } = await runMain([
      '--model',
      model.modelDir,
      '--engine',
      'reference',
      '--lora-modules',
      `wrong=${wrongDir}`,
    ]).exited;
    expect(code).toBe(1);
    const lines = stderrLines(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(wrongDir, 'adapter_model.safetensors'));
  });

  it('exits 2 on an unknown flag and 1 on --quantization for the reference engine, one line each', async () => {
    const [unknown, int8] = await Promise.all([
      runMain(['--no-such-flag']).exited,
      runMain(['--model', model.modelDir, '--engine', 'reference', '--quantization', 'int8']).exited,
    ]);
    expect(unknown.code).toBe(2);
    expect(stderrLines(unknown.stderr)).toEqual(['loom: unknown flag --no-such-flag (see --help)']);
    expect(int8.code).toBe(1);
    expect(stderrLines(int8.stderr)).toEqual([
      'loom: --quantization int8: the reference engine runs f32 weights only (use --engine onnx)',
    ]);
  });

  it('--uds serves on a Unix socket (replacing a stale one) and refuses a path that is not a socket', async () => {
    const path = join(model.root, 'loom.sock');
    // The socket file a killed server leaves behind.
    const crashed = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
    ]);
    await new Promise<void>((resolve) => crashed.stdout.once('data', () => resolve()));
    crashed.kill('SIGKILL');
    await new Promise((resolve) => crashed.on('exit', resolve));
    expect((await stat(path)).isSocket()).toBe(true);

    const { child, exited } = runMain(['--model', model.modelDir, '--engine', 'reference', '--uds', path]);
    await new Promise<void>((resolve, reject) => {
      let stdout = '';
      child.stdout?.on('data', (data) => {
        stdout += data;
        if (stdout.includes('"engine ready"')) resolve();
      });
      child.on('exit', () => reject(new Error(`exited before the engine was ready: ${stdout}`)));
    });
    const status = await new Promise<number>((resolve, reject) => {
      request({ socketPath: path, path: '/health' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(200);
    expect((await stat(path)).mode & 0o777).toBe(0o666);
    child.kill('SIGTERM');
    await exited;

    const notSocket = join(model.root, 'plain-file');
    await writeFile(notSocket, 'keep me');
    const refused = await runMain(['--model', model.modelDir, '--engine', 'reference', '--uds', notSocket])
      .exited;
    expect(refused.code).toBe(2);
    expect(stderrLines(refused.stderr)).toEqual([
      `loom: --uds ${notSocket}: something other than a socket is there`,
    ]);
    expect(await readFile(notSocket, 'utf8')).toBe('keep me');
  });

  it('--engine auto says in one log line which engine it chose and why', async () => {
    const { child, exited } = runMain(['--model', model.modelDir, '--pool-size', '8MiB']);
    let stdout = '';
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      child.stdout?.on('data', (data) => {
        stdout += data;
        const line = stdout.split('\n').find((l) => l.includes('"engine ready"'));
        if (line) resolve(JSON.parse(line));
      });
      child.on('exit', () => reject(new Error(`exited before the engine was ready: ${stdout}`)));
    });
    child.kill('SIGTERM');
    await exited;
    const choices = stdout
      .split('\n')
      .filter((l) => l.includes('using the onnx engine') || l.includes('webgpu engine on'));
    expect(choices).toHaveLength(1);
    // lavapipe (software) or no adapter: onnx; a hardware adapter: webgpu.
    if (ready.engine === 'onnx')
      expect(choices[0]).toMatch(/(software fallback|no WebGPU adapter).*; using the onnx engine/);
    else expect(ready.engine).toBe('webgpu');
  });

  it("refuses a context longer than a Mistral config's sliding_window, suggesting --max-model-len", async () => {
    const windowed = join(model.root, 'windowed');
    await cp(model.modelDir, windowed, { recursive: true });
    const configFile = join(windowed, 'config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, model_type: 'mistral', sliding_window: 256 }));
    const options = referenceStackOptions({ modelDir: windowed, maxModelLen: 512 });
    const build = buildServingStack(options, { info: () => {} });
    await expect(build).rejects.toBeInstanceOf(StartupError);
    await expect(build).rejects.toThrow(
      `${configFile}: sliding_window is 256 but the context would be 512 tokens; Loom's attention has no window, so serve at most 256 tokens (--max-model-len 256)`,
    );
    // vLLM's --disable-sliding-window caps the default context at the window instead.
    const capped = { ...options, maxModelLen: null, disableSlidingWindow: true };
    const stack = await buildServingStack(capped, { info: () => {} });
    expect(stack.maxModelLen).toBe(256);
    await stack.close();
    await expect(buildServingStack({ ...capped, maxModelLen: 512 }, { info: () => {} })).rejects.toThrow(
      /sliding_window is 256 but the context would be 512 tokens/,
    );
  });

  it("reads --hf-overrides into the model's config: a context past the overridden max_position_embeddings is refused", async () => {
    const options = referenceStackOptions();
    await expect(
      buildServingStack({ ...options, hfOverrides: { max_position_embeddings: 128 } }, { info: () => {} }),
    ).rejects.toThrow("--max-model-len 256 exceeds the model's max_position_embeddings 128");
    const stack = await buildServingStack(
      { ...options, hfOverrides: { max_position_embeddings: 256 } },
      { info: () => {} },
    );
    expect(stack.maxModelLen).toBe(256);
    await stack.close();
  });

  it('reads config.json from --hf-config-path, and names that file in its errors', async () => {
    const configDir = join(model.root, 'other-config');
    await mkdir(configDir, { recursive: true });
    const config = JSON.parse(await readFile(join(model.modelDir, 'config.json'), 'utf8'));
    const options = referenceStackOptions({ maxModelLen: null, hfConfigDir: configDir });
    await writeFile(
      join(configDir, 'config.json'),
      JSON.stringify({ ...config, max_position_embeddings: 192 }),
    );
    const stack = await buildServingStack(options, { info: () => {} });
    expect(stack.maxModelLen).toBe(192);
    await stack.close();
    // A config that does not fit the weights is refused, naming the file it came from.
    await writeFile(join(configDir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 7 }));
    await expect(buildServingStack(options, { info: () => {} })).rejects.toThrow(
      join(configDir, 'config.json'),
    );
  });

  it('--max-model-len auto fits the longest context one sequence can hold in the pool', async () => {
    const options = referenceStackOptions({ maxModelLen: 'auto' });
    const roomy = await buildServingStack({ ...options, poolSize: '8MiB' }, { info: () => {} });
    const positions = syntheticConfig(TINY_SPEC).maxPositionEmbeddings;
    expect(roomy.maxModelLen).toBe(positions);
    await roomy.close();
    const lines: object[] = [];
    const tight = await buildServingStack(
      { ...options, poolSize: '64KiB' },
      { info: (o: object) => lines.push(o) },
    );
    expect(tight.maxModelLen).toBeLessThan(positions);
    expect(tight.maxModelLen).toBeGreaterThan(0);
    expect(lines).toContainEqual({ maxModelLen: tight.maxModelLen, limit: positions });
    await tight.close();
    // One token more would not fit: the same pool refuses it as a fixed length.
    await expect(
      buildServingStack(
        { ...options, poolSize: '64KiB', maxModelLen: tight.maxModelLen + 16 },
        { info: () => {} },
      ),
    ).rejects.toThrow(/one sequence of --max-model-len/);
  });

  it('refuses a pool too small for one full-length sequence, or for an adapter beside one', async () => {
    const build = (maxModelLen: number) =>
      buildServingStack(
        referenceStackOptions({
          loraModules: [{ name: 'first', path: model.adapters[0].path }],
          maxModelLen,
          poolSize: '64KiB',
        }),
        { info: () => {} },
      );
    // 64 KiB of 64-float pages is 255 usable pages; 2 tokens per 4-page block.
    await expect(build(512)).rejects.toBeInstanceOf(StartupError);
    await expect(build(512)).rejects.toThrow(
      /--pool-size 64KiB: the pool has 255 pages; one sequence of --max-model-len 512 tokens needs 1024/,
    );
    await expect(build(120)).rejects.toThrow(
      /adapter "first" needs 16 pages; beside one full-context sequence \(240 pages\) the pool of 255 pages cannot hold it/,
    );
  });

  it('serves, then exits 0 on SIGTERM', async () => {
    const { child, exited } = runMain([
      '--model',
      model.modelDir,
      '--lora-modules',
      `first=${model.adapters[0].path}`,
      '--engine',
      'reference',
      '--pool-size',
      '8MiB',
      '--port',
      '0',
    ]);
    let stdout = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout?.on('data', (data) => {
        stdout += data;
        const listening = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
        if (listening) resolve(Number(listening[1]));
      });
      child.on('exit', () => reject(new Error(`exited before listening: ${stdout}`)));
    });
    let health = 0;
    for (let i = 0; i < 200 && health !== 200; i++) {
      health = (await fetch(`http://127.0.0.1:${port}/health`)).status;
      if (health !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(health).toBe(200);
    child.kill('SIGTERM');
    const { code } = await exited;
    expect(code).toBe(0);
  });
});
