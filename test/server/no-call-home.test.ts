import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from './tiny-server.js';

/**
 * Loom makes no network call of its own, and neither may its dependencies. onnxruntime's
 * telemetry is native code (node's net/dns never see it), so three witnesses watch a start-up on
 * the onnx engine plus one request:
 * - what onnxruntime's telemetry leaves behind when it runs (its event store under
 *   $HOME/.cache/Microsoft, /tmp/mat-debug-<pid>.log): absent, so it never started;
 * - JavaScript's connects and DNS queries, recorded by a preloaded module (network-recorder.mjs);
 * - every connect(2) of the process tree, native code included, under strace where it exists
 *   (CI installs it; elsewhere that witness is skipped with a message).
 */
const ROOT = join(import.meta.dirname, '../..');
const hasStrace = spawnSync('strace', ['-V']).status === 0;

let model: { root: string; modelDir: string };

/** node's arguments for main.ts on the onnx engine and the tiny model, port 0. */
function onnxServerArgs(...extra: string[]): string[] {
  return [
    '--import',
    'tsx',
    'server/main.ts',
    ...['--model', model.modelDir, '--engine', 'onnx', '--port', '0', '--pool-size', '8MiB'],
    ...extra,
  ];
}
let home: string;

beforeAll(async () => {
  model = await writeTinyModel();
  home = await mkdtemp(join(tmpdir(), 'loom-home-'));
});

afterAll(async () => {
  await rm(model.root, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

describe('start-up makes no outbound connection', () => {
  it('opens no socket but its listener and starts no onnxruntime telemetry', async () => {
    if (!hasStrace && process.env.CI) throw new Error('strace is missing (.ci/run installs it)');
    if (!hasStrace) console.warn('no-call-home: strace not found, native connects are not watched');
    const networkLog = join(home, 'network.jsonl');
    const straceLog = join(home, 'strace.txt');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      LOOM_NETWORK_LOG: networkLog,
      LOG_LEVEL: 'info',
    };
    // Loom must switch the telemetry off itself, whatever the caller's environment says.
    delete env.ORT_DISABLE_TELEMETRY;
    delete env.XDG_CACHE_HOME;
    const serverArgs = ['--import', './test/server/network-recorder.mjs', ...onnxServerArgs()];
    // onnxruntime's telemetry leaves mat-debug-<pid>.log in the temp folder: one from an earlier
    // process that had this pid is not this server's, so only a file written since now counts.
    const spawnedAt = Date.now();
    const child = hasStrace
      ? spawn(
          'strace',
          ['-f', '-qq', '-e', 'trace=connect', '-o', straceLog, process.execPath, ...serverArgs],
          {
            cwd: ROOT,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        )
      : spawn(process.execPath, serverArgs, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (data) => {
      stderr += data;
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (data) => {
          stdout += data;
          const listening = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
          if (listening && stdout.includes('"msg":"serving"')) resolve(listening[1]);
        });
        child.on('exit', () => reject(new Error(`server exited early: ${stdout}${stderr}`)));
        setTimeout(() => reject(new Error(`no "serving" within 60 s: ${stdout}${stderr}`)), 60_000).unref();
      });
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-base', prompt: 'hello', max_tokens: 4 }),
      });
      expect(res.status).toBe(200);
    } finally {
      // The server itself, not strace around it.
      const pid = Number(/"pid":(\d+)/.exec(stdout)?.[1]);
      if (pid) process.kill(pid, 'SIGTERM');
      else child.kill('SIGKILL');
    }
    // A server that does not stop within 20 s fails the test, and is not left running.
    const stopped = await Promise.race([
      exited,
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000)),
    ]);
    if (stopped === 'hung') {
      const pid = Number(/"pid":(\d+)/.exec(stdout)?.[1]);
      if (pid) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
    }
    expect(stopped).toBe(0);
    const serverPid = Number(/"pid":(\d+)/.exec(stdout)?.[1]);

    expect(existsSync(join(home, '.cache', 'Microsoft'))).toBe(false);
    const telemetryLog = join(tmpdir(), `mat-debug-${serverPid}.log`);
    expect(existsSync(telemetryLog) && statSync(telemetryLog).mtimeMs >= spawnedAt - 1000).toBe(false);
    // The one lookup allowed is the listener's own address (Fastify resolves --host).
    const recorded = existsSync(networkLog)
      ? (await readFile(networkLog, 'utf8'))
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { kind: string; detail: unknown })
          .filter((r) => !(r.kind === 'dns.lookup' && r.detail === '127.0.0.1'))
      : [];
    expect(recorded).toEqual([]);
    if (hasStrace) {
      const connects = (await readFile(straceLog, 'utf8'))
        .split('\n')
        .filter((line) => /connect\(.*sa_family=AF_INET6?\b/.test(line));
      expect(connects).toEqual([]);
    }
  });

  it('starts with a 100 KB command line, on which the telemetry of onnxruntime crashes (SIGSEGV)', async () => {
    // As a start with 2,000 --lora-modules makes: with telemetry on, the process died with
    // SIGSEGV while creating the engine.
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, LOG_LEVEL: 'info' };
    delete env.ORT_DISABLE_TELEMETRY;
    const longName = 'n'.repeat(100_000);
    const child = spawn(process.execPath, onnxServerArgs('--served-model-name', longName), {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    let stdout = '';
    let stopping = false;
    child.stdout.on('data', (data) => {
      stdout += data;
      // Once: a second SIGTERM means "exit now" (exit code 1).
      if (!stopping && stdout.includes('"msg":"serving"')) {
        stopping = true;
        child.kill('SIGTERM');
      }
    });
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('"msg":"serving"');
  });
});
