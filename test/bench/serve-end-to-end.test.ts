import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** `npm start` as a user runs it (embedded default model), on 127.0.0.1 and a free port. */
async function startServer(): Promise<{ child: ChildProcess; baseUrl: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', '0', '--seed', '1'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not listen: ${out}`)), 60_000);
    child.stdout?.on('data', (data) => {
      out += data;
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    const health = await fetch(`${baseUrl}/health`).catch(() => null);
    if (health?.ok) return { child, baseUrl };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('server never became healthy');
}

function runBench(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/serve.ts', ...argv], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

let server: { child: ChildProcess; baseUrl: string };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loom-bench-serve-'));
  server = await startServer();
});

afterAll(async () => {
  if (server?.child.exitCode === null) {
    const exited = new Promise((resolve) => server.child.once('exit', resolve));
    server.child.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('npm run bench:serve against the real server', () => {
  it("streams a small workload and reports vLLM's figures per adapter", async () => {
    const saved = join(dir, 'result.json');
    const { code, stdout, stderr } = await runBench([
      '--base-url',
      server.baseUrl,
      '--num-prompts',
      '6',
      '--random-input-len',
      '12',
      '--random-output-len',
      '4',
      '--ignore-eos',
      '--request-rate',
      '50',
      '--lora-modules',
      'bible',
      'devil',
      '--lora-assignment',
      'round-robin',
      '--goodput',
      'e2el:60000',
      '--save-result',
      saved,
      '--result-dir',
      dir,
    ]);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('Serving Benchmark Result');
    expect(stdout).toMatch(/Successful requests:\s+6/);
    expect(stderr).toContain('6/6 done, 0 failed');

    const result = JSON.parse(readFileSync(saved, 'utf8'));
    expect(result.completed).toBe(6);
    expect(result.failed).toBe(0);
    // Token-id prompts give exact input lengths; ignore_eos gives exact output lengths.
    expect(result.input_lens).toEqual([12, 12, 12, 12, 12, 12]);
    expect(result.output_lens).toEqual([4, 4, 4, 4, 4, 4]);
    expect(result.total_output_tokens).toBe(24);
    expect(result.request_rate).toBe(50);
    expect(result.slo_attainment).toBe(1);
    for (const metric of ['ttft', 'tpot', 'itl', 'e2el'])
      for (const stat of ['mean', 'median', 'p90', 'p99'])
        expect(result[`${stat}_${metric}_ms`], `${stat}_${metric}_ms`).toBeGreaterThan(0);
    expect(result.request_throughput).toBeGreaterThan(0);
    expect(result.output_throughput).toBeGreaterThan(0);
    expect(result.ttfts).toHaveLength(6);
    // ITL gaps are between chunks with text (as vLLM's bench counts them); the trained model can spend
    // some of a request's 4 tokens on special tokens, which stream no text.
    expect(result.itls.some((gaps: number[]) => gaps.length >= 1)).toBe(true);
    expect(Object.keys(result.per_adapter)).toEqual(['bible', 'devil']);
    expect(result.per_adapter.bible.completed).toBe(3);
    expect(result.per_adapter.devil.completed).toBe(3);
    for (const file of ['serve.json', 'serve.md', 'serve.svg', 'serve-latency-cdf.svg'])
      expect(existsSync(join(dir, file)), file).toBe(true);
  });

  it('names an adapter the server does not serve instead of sending requests', async () => {
    const { code, stderr } = await runBench(['--base-url', server.baseUrl, '--lora-modules', 'nope']);
    expect(code).toBe(1);
    expect(stderr).toContain('--lora-modules: nope not served');
  });
});
