import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** main.ts as a user runs it, for flags that end before any model loads. */
function runMain(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data) => {
    stdout += data;
  });
  child.stderr.on('data', (data) => {
    stderr += data;
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('main.ts flags that end at once', () => {
  it("--version prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const { code, stdout, stderr } = await runMain(['--version']);
    expect(code).toBe(0);
    expect(stdout).toBe(`${version}\n`);
    expect(stderr).toBe('');
  });

  it('exits 2 with one line on --quantization awq and on --tensor-parallel-size 2', async () => {
    for (const args of [
      ['--quantization', 'awq'],
      ['--tensor-parallel-size', '2'],
    ]) {
      const { code, stderr } = await runMain(args);
      expect(code).toBe(2);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain(args[0]);
    }
  });
});

describe('main.ts serving with vLLM flags', () => {
  it('logs one line per accepted vLLM flag, the model size and load rate, then serves until SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'server/main.ts',
        '--port',
        '0',
        '--enable-lora',
        '--trust-remote-code',
        '-tp',
        '1',
        '--log-level',
        'info',
      ],
      // The flag wins over the environment, which alone would keep every line below out.
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warning' } },
    );
    const lines: { msg: string; [field: string]: unknown }[] = [];
    let buffered = '';
    const serving = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (data) => {
        buffered += data;
        const complete = buffered.split('\n');
        buffered = complete.pop() ?? '';
        for (const line of complete.filter(Boolean)) {
          lines.push(JSON.parse(line));
          if (lines.at(-1)?.msg === 'serving') resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code} before serving`)));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await serving;
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const messages = lines.map((l) => l.msg);
    expect(messages).toContain('--enable-lora: LoRA is always on in Loom; the flag changes nothing');
    expect(messages).toContain('--trust-remote-code: ignored, Loom runs no code from model repositories');
    expect(messages).toContain('--tensor-parallel-size 1: ignored, Loom runs on one device');
    expect(lines.find((l) => l.msg === 'model weights to load')).toMatchObject({
      shards: 1,
      megabytes: expect.any(Number),
    });
    const loaded = lines.find((l) => l.msg === 'model loaded');
    expect(loaded).toMatchObject({ seconds: expect.any(Number), megabytesPerSecond: expect.any(Number) });
    expect(messages.indexOf('model loaded')).toBeLessThan(messages.indexOf('serving'));
  }, 60_000);
});
