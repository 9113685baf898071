import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchRequest } from './random-dataset.js';
import { runWorkload } from './run-workload.js';
import type { RequestOutcome } from './stream-request.js';

/** A Loom server a benchmark started as a child process. */
export interface LoomServer {
  baseUrl: string;
  child: ChildProcess;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start`'s entry (server/main.ts) with the given flags on port 0; resolves once it serves. */
export async function startLoomServer(flags: string[]): Promise<LoomServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', '0', ...flags], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (data: Buffer) => {
      output += data;
      const port = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port && output.includes('"msg":"serving"')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve({ baseUrl: `http://127.0.0.1:${port}`, child });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (data: Buffer) => {
      output += data;
    });
    child.on('exit', (code) =>
      reject(new Error(`server exited (${code}) before serving: ${output.slice(-2000)}`)),
    );
  });
}

/** SIGTERM, then SIGKILL after 30 s; resolves once the process has exited. */
export async function stopLoomServer(server: LoomServer): Promise<void> {
  const exited = new Promise((resolve) => server.child.on('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/**
 * The benchmarks' open-loop run against a server they started: completions with token-id prompts
 * and ignore_eos, every request sent at its arrival, a 30-minute bound on each.
 */
export function runOnLoomServer(
  server: LoomServer,
  requests: readonly BenchRequest[],
): Promise<{ outcomes: RequestOutcome[]; durationSeconds: number }> {
  return runWorkload(requests, {
    baseUrl: server.baseUrl,
    endpoint: '/v1/completions',
    promptFormat: 'ids',
    ignoreEos: true,
    timeoutMs: 30 * 60_000,
    maxConcurrency: null,
  });
}
