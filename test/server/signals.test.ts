import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sseEvents } from './fake-stack.js';
import { useTinyModel } from './tiny-server.js';

/**
 * `npm start` as a user (or a container runtime) runs it, stopped with SIGTERM sent to npm itself
 * while streams are in flight: the signal must reach node (no shell or wrapper left holding it),
 * the streams must end with [DONE], and npm must exit 0 with no server process left behind.
 */
const model = useTinyModel();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('drains streams in flight on SIGTERM to npm, exits 0 and leaves no server behind', async () => {
    const npm = spawn(
      'npm',
      [
        'start',
        '--',
        '--model',
        model.modelDir,
        '--engine',
        'reference',
        '--port',
        '0',
        '--pool-size',
        '8MiB',
      ],
      {
        cwd: join(import.meta.dirname, '../..'),
        env: { ...process.env, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => npm.on('exit', (code) => resolve(code)));
    let stdout = '';
    let serverPid = 0;
    const url = await new Promise<string>((resolve, reject) => {
      npm.stdout.on('data', (data) => {
        stdout += data;
        const pid = /"pid":(\d+)/.exec(stdout);
        if (pid) serverPid = Number(pid[1]);
        if (stdout.includes('"msg":"serving"')) {
          const listening = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
          if (listening) resolve(listening[1]);
        }
      });
      npm.on('exit', () => reject(new Error(`npm start exited early: ${stdout}`)));
    });
    expect(serverPid).toBeGreaterThan(0);
    expect(serverPid).not.toBe(npm.pid);
    try {
      await stopWithStreams(url, npm, exited, () => stdout);
      expect(isAlive(serverPid)).toBe(false);
    } finally {
      // A failed run must not leave the server running.
      if (isAlive(serverPid)) process.kill(serverPid, 'SIGKILL');
      npm.kill('SIGKILL');
    }
  });
});

async function stopWithStreams(
  url: string,
  npm: ChildProcess,
  exited: Promise<number | null>,
  stdout: () => string,
): Promise<void> {
  const streams = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny-base',
          prompt: `stream ${i}`,
          max_tokens: 400,
          ignore_eos: true,
          stream: true,
        }),
      });
      const reader = res.body!.getReader();
      const first = await reader.read();
      return { reader, body: new TextDecoder().decode(first.value) };
    }),
  );
  npm.kill('SIGTERM');
  // Draining shows on /health as soon as the signal has reached node (npm relays it).
  let health = 200;
  for (let i = 0; i < 100 && health === 200; i++) {
    health = (await fetch(`${url}/health`).catch(() => null))?.status ?? 0;
    if (health === 200) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect([503, 0]).toContain(health);

  for (const stream of streams) {
    const decoder = new TextDecoder();
    for (let chunk = await stream.reader.read(); !chunk.done; chunk = await stream.reader.read())
      stream.body += decoder.decode(chunk.value);
    const events = sseEvents(stream.body);
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).choices[0].finish_reason).toBe('length');
  }
  expect(await exited).toBe(0);
  // The streams were still running when the signal came.
  expect(Number(/"inFlight":(\d+),[^\n]*"msg":"draining"/.exec(stdout())?.[1])).toBeGreaterThan(0);
}
