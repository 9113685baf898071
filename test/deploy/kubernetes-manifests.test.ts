import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { parseCliOptions } from '../../server/cli-options.js';
import { fakeStack } from '../server/fake-stack.js';
import { parsePrometheusText } from '../server/prometheus-text.js';
import { startTinyServer, TINY_MODEL_NAME, type TinyServer } from '../server/tiny-server.js';

const ROOT = join(import.meta.dirname, '../..');
const DIR = join(ROOT, 'deploy/kubernetes');
const read = (file: string) => readFileSync(join(DIR, file), 'utf8');

/** The `- item` lines of the YAML list under `key:` (at one indentation), quotes removed. */
function listUnder(text: string, key: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.trimStart() === `${key}:`);
  if (start < 0) throw new Error(`no "${key}:" list`);
  const indent = lines[start].length - lines[start].trimStart().length;
  const items: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const trimmed = line.trimStart();
    if (trimmed.startsWith('#')) continue;
    if (line.length - trimmed.length < indent || !trimmed.startsWith('- ')) break;
    items.push(trimmed.slice(2).replace(/^"(.*)"$/, '$1'));
  }
  return items;
}

describe('deploy/kubernetes', () => {
  const deployment = read('loom-deployment.yaml');
  const picker = read('endpoint-picker.yaml');
  const pool = read('inference-pool.yaml');

  it('starts Loom with flags Loom accepts, listening where the probes, Service and pool look', () => {
    const args = listUnder(deployment, 'args');
    const command = parseCliOptions(args);
    expect(command.kind).toBe('serve');
    if (command.kind !== 'serve') return;
    expect(command.options.host).toBe('0.0.0.0');
    expect(command.options.port).toBe(8000);
    // The syncer's runtime loads must be allowed, from where loom-adapters.yaml points.
    expect(args).toContain('--lora-root=/models/adapters');
    expect(deployment).toMatch(/containerPort: 8000/);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
      expect(deployment).toMatch(new RegExp(`${probe}:\\s+httpGet:\\s+path: /health\\s+port: http`));
    expect(read('loom-service.yaml')).toMatch(/selector:\s+app: loom/);
    expect(pool).toMatch(/selector:\s+matchLabels:\s+app: loom/);
    expect(pool).toMatch(/targetPorts:\s+- number: 8000/);
    expect(deployment).toMatch(/template:\s+metadata:\s+labels:\s+app: loom/);
  });

  it('drains through a preStop script that exists, within the grace period', () => {
    const command = /preStop:\s+exec:\s+command: \[(.*)\]/.exec(deployment);
    expect(command).not.toBeNull();
    const parts = JSON.parse(`[${command![1]}]`) as string[];
    expect(existsSync(join(ROOT, parts[2]))).toBe(true);
    const timeout = Number(parts.find((p) => p.startsWith('--timeout='))!.split('=')[1]);
    const grace = Number(/terminationGracePeriodSeconds: (\d+)/.exec(deployment)![1]);
    expect(timeout + 5).toBeLessThan(grace);
  });

  it('configures the endpoint picker with the queue, KV-cache and LoRA-affinity scorers it defines', () => {
    const defined = [...picker.matchAll(/- type: (\S+)/g)].map((m) => m[1]);
    const referenced = [...picker.matchAll(/pluginRef: (\S+)/g)].map((m) => m[1]);
    expect(defined).toEqual(
      expect.arrayContaining(['queue-scorer', 'kv-cache-utilization-scorer', 'lora-affinity-scorer']),
    );
    for (const ref of referenced) expect(defined).toContain(ref);
    expect(picker).toMatch(/--pool-name=loom/);
    expect(pool).toMatch(/endpointPickerRef:\s+name: loom-epp\s+port:\s+number: 9002/);
    expect(picker).toMatch(/--grpc-port=9002/);
  });

  it("points the picker at metrics Loom's /metrics has", async () => {
    const app = buildApp({ stack: fakeStack() });
    const exposition = parsePrometheusText((await app.inject('/metrics')).body);
    await app.close();
    const names = new Set(exposition.samples.map((s) => s.name));
    const flags = [
      ...picker.matchAll(/--(?:total-queued-requests|kv-cache-usage-percentage|lora-info)-metric=(\S+)/g),
    ];
    expect(flags).toHaveLength(3);
    for (const [, metric] of flags) expect(names, metric).toContain(metric);
  });

  it('lists adapters for the syncer sidecar as local directories', () => {
    const adapters = read('loom-adapters.yaml');
    expect(adapters).toMatch(/vLLMLoRAConfig:/);
    expect(adapters).toMatch(/port: 8000/);
    for (const [, source] of adapters.matchAll(/source: (\S+)/g))
      expect(source.startsWith('/models/')).toBe(true);
    expect(deployment).toMatch(/configMap:\s+name: loom-adapters/);
  });

  it('lists every manifest in the kustomization', () => {
    const listed = listUnder(read('kustomization.yaml'), 'resources');
    expect(listed.sort()).toEqual([
      'endpoint-picker.yaml',
      'inference-pool.yaml',
      'loom-adapters.yaml',
      'loom-deployment.yaml',
      'loom-service.yaml',
    ]);
  });
});

describe('deploy/kubernetes/wait-idle.ts (the drain)', () => {
  let server: TinyServer;
  beforeAll(async () => {
    server = await startTinyServer('reference', { maxNumSeqs: 1, maxNumBatchedTokens: 64 });
  });
  afterAll(async () => {
    await server?.close();
  });

  function waitIdle(args: string[]): {
    child: ChildProcess;
    done: Promise<{ code: number | null; stderr: string }>;
  } {
    const port = new URL(server.baseURL).port;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'deploy/kubernetes/wait-idle.ts',
        `--port=${port}`,
        '--settle=0',
        '--interval=0.02',
        ...args,
      ],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    return { child, done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr }))) };
  }

  it('returns only once the running and waiting requests have finished', async () => {
    const { scheduler } = server.stack;
    let finishedAt = 0;
    const requests = [1, 2].map(() =>
      server.client.completions
        .create({ model: TINY_MODEL_NAME, prompt: [1, 2, 3], max_tokens: 120, ignore_eos: true } as never)
        .then(() => {
          finishedAt = Date.now();
        }),
    );
    for (let i = 0; i < 5000 && scheduler.stats().numWaitingRequests < 1; i++)
      await new Promise((r) => setTimeout(r, 1));
    expect(scheduler.stats().numRunningRequests + scheduler.stats().numWaitingRequests).toBe(2);
    const { done } = waitIdle(['--timeout=60']);
    const result = await done;
    const exitedAt = Date.now();
    await Promise.all(requests);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/idle after/);
    expect(exitedAt).toBeGreaterThanOrEqual(finishedAt);
  });

  it('gives up at --timeout while requests stay in flight, and when nothing answers', async () => {
    // A replica that stays busy: its /metrics always shows one running request.
    const busy = createServer((_req, res) => {
      res.end('vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_waiting{model_name="m"} 0\n');
    });
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    const stuck = await waitIdle([`--port=${port}`, '--timeout=0.3']).done;
    await new Promise((resolve) => busy.close(resolve));
    expect(stuck.code).toBe(0);
    expect(stuck.stderr).toMatch(/1 requests still in flight after/);
    const nobody = await waitIdle(['--port=1']).done;
    expect(nobody.code).toBe(0);
    expect(nobody.stderr).toMatch(/does not answer/);
  });
});
