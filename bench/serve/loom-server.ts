import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchRequest } from './random-dataset.js';
import { runWorkload } from './run-workload.js';
import { parseServeBenchArgs, type ServeBenchArgs } from './serve-args.js';
import type { RequestOutcome } from './stream-request.js';
import { buildWorkload } from './workload.js';

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

/** What the A/B benchmarks ask of bench:serve's random dataset. */
export interface RandomWorkloadShape {
  numPrompts: number;
  /** vLLM's --random-prefix-len: one shared random prefix before every prompt; default none. */
  prefixLen?: number;
  inputLen: number;
  outputLen: number;
  seed: number;
  /** Requests per second (Poisson), or 'inf': all at once. */
  requestRate: string;
}

/**
 * bench:serve's random workload (ignore_eos) for the base model of a server a benchmark started:
 * its name and vocabulary read from /v1/models and its config.json, so every mode and round of
 * one run sends the same requests.
 */
export async function randomWorkloadFor(
  server: LoomServer,
  shape: RandomWorkloadShape,
): Promise<BenchRequest[]> {
  const models = (await (await fetch(`${server.baseUrl}/v1/models`)).json()) as {
    data: { id: string; root: string | null; parent: string | null }[];
  };
  const base = models.data.find((card) => card.parent === null)!;
  const config = JSON.parse(readFileSync(join(base.root!, 'config.json'), 'utf8')) as { vocab_size: number };
  const bench: ServeBenchArgs = {
    ...(parseServeBenchArgs([]) as ServeBenchArgs),
    baseUrl: server.baseUrl,
    numPrompts: shape.numPrompts,
    ...(shape.prefixLen === undefined ? {} : { randomPrefixLen: shape.prefixLen }),
    randomInputLen: shape.inputLen,
    randomOutputLen: shape.outputLen,
    ignoreEos: true,
    seed: shape.seed,
  };
  const rate = shape.requestRate === 'inf' ? Number.POSITIVE_INFINITY : Number(shape.requestRate);
  return buildWorkload(bench, base.id, rate, { vocabSize: config.vocab_size, decode: null });
}

/**
 * Every mode measured once per round, which mode goes first alternating round by round, so a
 * drift in the machine's load hits all alike; `progress` hears each run's start and its summary.
 */
export async function alternatingRounds<M extends string, R>(
  modes: readonly M[],
  rounds: number,
  measure: (mode: M) => Promise<R>,
  progress: { start: (mode: M, round: number) => void; done: (result: R) => void },
): Promise<Record<M, R[]>> {
  const results = Object.fromEntries(modes.map((mode) => [mode, [] as R[]])) as Record<M, R[]>;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? modes : [...modes].reverse();
    for (const mode of order) {
      progress.start(mode, round);
      const result = await measure(mode);
      progress.done(result);
      results[mode].push(result);
    }
  }
  return results;
}
