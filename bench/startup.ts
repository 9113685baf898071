/**
 * Start-up of the onnx engine on a synthetic TinyLlama-shaped F32 checkpoint (two safetensors
 * shards, as Hugging Face writes a 4.4 GB model):
 *  - the real server (`server/main.ts --engine onnx`): seconds from spawn to `/health` 200, the
 *    server's resident memory then (anonymous vs file-backed) and at its peak, its own phase
 *    lines (model loaded, engine created), and decode batch 1 as a client sees it (gaps between
 *    streamed tokens). With `--before DIR` (a checkout of an earlier commit, node_modules linked)
 *    its server runs too, round after round with this one, so both see the same machine.
 *  - the engine's weight options side by side, each in a fresh process: linear weights mapped from
 *    the files and prepacked by onnxruntime (the default), mapped and not prepacked, and host arrays
 *    handed to onnxruntime in memory (what the engine did before, which it copies);
 *    time to a ready engine, memory, and decode batch 1 and 8 ms/step.
 *
 *   npx tsx bench/startup.ts [--layers N] [--rounds N] [--before DIR] [--threads N]
 *     [--server-flags='--quantization int8'] [--servers-only] [--stream-tokens N] [--name startup]
 *     [--small-pages-too] [--packed-cache-too]
 *
 * Every process starts with the environment `npm start` gives node (glibc's huge-page tunable,
 * server/huge-pages.ts); --small-pages-too also starts this tree's server without it.
 * --packed-cache-too also starts it with --cache-packed-weights, its cache under .cache/bench: once
 * from an empty cache (the start that saves the packed session), then every round mapping it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import { type FileReadProgress, loadModel } from '../model/load-model.js';
import { TINYLLAMA_SPEC, writeSyntheticModel } from '../model/synthetic.js';
import { withHugePagesTunable } from '../server/huge-pages.js';
import { machineContext, writeBenchReport } from './report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const VARIANTS = ['mapped-prepacked', 'mapped-no-prepack', 'host-prepacked'] as const;
type Variant = (typeof VARIANTS)[number];
const DECODE_STEPS = 9;

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    rounds: { type: 'string', default: '2' },
    before: { type: 'string' },
    threads: { type: 'string', default: '2' },
    'server-flags': { type: 'string', default: '' },
    'servers-only': { type: 'boolean', default: false },
    'small-pages-too': { type: 'boolean', default: false },
    'packed-cache-too': { type: 'boolean', default: false },
    'stream-tokens': { type: 'string', default: '24' },
    name: { type: 'string', default: 'startup' },
    child: { type: 'string' },
    'model-dir': { type: 'string' },
  },
});
const numLayers = Number(args.layers);
const serverFlags = args['server-flags'].split(' ').filter(Boolean);
const threads = Number(args.threads);

function progress(message: string): void {
  process.stderr.write(`[bench:startup] ${message}\n`);
}

/** The process's memory from /proc: resident anonymous and file-backed MB, and the peak resident MB. */
interface Memory {
  anonMb: number;
  fileMb: number;
  peakMb: number;
}

function memoryOf(pid: number | 'self'): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { anonMb: kb('RssAnon') / 1024, fileMb: kb('RssFile') / 1024, peakMb: kb('VmHWM') / 1024 };
}

function spread(times: number[]): { min: number; median: number; max: number } {
  const s = [...times].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
}

function fmtSpread(values: number[], digits = 0): string {
  const { min, median, max } = spread(values);
  return `${min.toFixed(digits)} / ${median.toFixed(digits)} / ${max.toFixed(digits)}`;
}

/** A child process: loads the model, builds the engine the variant says, decodes; prints one JSON line. */
async function runChild(variant: Variant, modelDir: string): Promise<void> {
  const started = performance.now();
  const files: FileReadProgress[] = [];
  const model = await loadModel(modelDir, { onFileRead: (f) => files.push(f) });
  if (variant === 'host-prepacked') {
    // Every linear weight read into a host array and handed over in memory, as before.
    for (const layer of model.weights.layers) for (const w of Object.values(layer.linear)) void w.length;
    void model.weights.lmHead.length;
    model.weights.files = undefined;
  }
  const loadSeconds = (performance.now() - started) / 1000;
  const layout = kvLayout(model.config);
  const pool = new PagePool(1 + 8 * 2 * layout.pagesPerBlock * 8, model.config.hiddenSize);
  const engineStarted = performance.now();
  const engine = await OnnxEngine.create(model.weights, pool, {
    threads,
    prepackWeights: variant !== 'mapped-no-prepack',
  });
  const engineSeconds = (performance.now() - engineStarted) / 1000;
  const ready = memoryOf('self');
  const kv = new KvCache(pool, layout);
  const decode: Record<string, number[]> = {};
  let firstStepMs = 0;
  for (const batch of [1, 8]) {
    const ids = Array.from({ length: batch }, (_, i) => 100 * batch + i);
    let pos = 0;
    const step = async (tokensOf: (id: number) => number[]) => {
      const t0 = performance.now();
      await engine.step({
        sequences: ids.map((id) => {
          if (!kv.reserve(id, pos + tokensOf(id).length)) throw new Error('bench pool too small');
          return {
            seqId: id,
            tokens: tokensOf(id),
            startPos: pos,
            pageTable: kv.pageTable(id),
            adapter: null,
            logits: 'last' as const,
          };
        }),
      });
      pos += tokensOf(ids[0]).length;
      return performance.now() - t0;
    };
    const ms = await step((id) =>
      Array.from({ length: 64 }, (_, i) => (i * 7 + id) % model.config.vocabSize),
    );
    if (batch === 1) firstStepMs = ms;
    decode[`b${batch}`] = [];
    for (let s = 0; s < DECODE_STEPS; s++) decode[`b${batch}`].push(await step((id) => [(id + s) % 1000]));
    for (const id of ids) kv.free(id);
  }
  await engine.close();
  process.stdout.write(
    `${JSON.stringify({ variant, loadSeconds, engineSeconds, ready, firstStepMs, decode, files, end: memoryOf('self') })}\n`,
  );
}

interface ChildResult {
  variant: Variant;
  loadSeconds: number;
  engineSeconds: number;
  ready: Memory;
  firstStepMs: number;
  decode: Record<string, number[]>;
  files: FileReadProgress[];
}

function runProcess(command: string[], cwd: string): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, command, {
      cwd,
      env: NPM_START_ENV,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.on('exit', (code) =>
      code === 0 ? resolveRun(out) : reject(new Error(`${command.join(' ')} exited ${code}`)),
    );
  });
}

/** One server to start: its label, whose tree, the environment node starts with, flags of its own. */
interface ServerVariant {
  label: string;
  root: string;
  env: NodeJS.ProcessEnv;
  flags?: string[];
  /** A line the server must log, else the run measured something else (a cache that missed). */
  mustLog?: string;
}

/** As `npm start` starts node (package.json): huge pages for malloc's mappings (server/huge-pages.ts). */
const NPM_START_ENV = withHugePagesTunable(process.env);
/** The same without glibc's huge-page tunable: every large buffer faulted in 4 KiB at a time. */
const SMALL_PAGES_ENV = (() => {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  return env;
})();

interface ServerResult {
  label: string;
  healthSeconds: number;
  phases: Record<string, number>;
  ready: Memory;
  /** The first request's time to its first token: mapped weights are read in by the first steps. */
  firstTokenMs: number;
  /** After the first completion. */
  afterFirst: Memory;
  decodeMs: number[];
}

/** Spawns a server from `root`, times /health 200 from the spawn, reads its memory, streams one completion. */
async function measureServer(
  { label, root, env, flags = [], mustLog }: ServerVariant,
  modelDir: string,
): Promise<ServerResult> {
  const spawned = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'server/main.ts',
      '--port',
      '0',
      '--model',
      modelDir,
      '--engine',
      'onnx',
      '--pool-size',
      '512MiB',
      ...serverFlags,
      ...flags,
    ],
    { cwd: root, env: { ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d;
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d;
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    let port: string | undefined;
    let healthSeconds = 0;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${label} server exited: ${output.slice(-2000)}`);
      port ??= /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port) {
        const res = await fetch(`http://127.0.0.1:${port}/health`).catch(() => null);
        if (res?.status === 200) {
          healthSeconds = (performance.now() - spawned) / 1000;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const ready = memoryOf(child.pid!);
    // The log lines of a ready server may still be in the pipe when /health answers.
    for (let i = 0; i < 50 && !output.includes('"msg":"serving"'); i++)
      await new Promise((r) => setTimeout(r, 100));
    if (mustLog && !output.includes(mustLog))
      throw new Error(`${label}: the server did not log "${mustLog}": ${output.slice(-2000)}`);
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { time: number; msg: string });
    const at = (msg: string) => lines.find((l) => l.msg === msg)?.time;
    const phases: Record<string, number> = {};
    const load = [at('loading model'), at('creating engine')];
    const engine = [at('creating engine'), at('engine ready')];
    if (load[0] && load[1]) phases.loadAndPoolSeconds = (load[1] - load[0]) / 1000;
    if (engine[0] && engine[1]) phases.engineSeconds = (engine[1] - engine[0]) / 1000;
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as {
      data: { id: string }[];
    };
    const { firstTokenMs, gapsMs } = await streamCompletion(`http://127.0.0.1:${port}`, models.data[0].id);
    return {
      label,
      healthSeconds,
      phases,
      ready,
      firstTokenMs,
      afterFirst: memoryOf(child.pid!),
      decodeMs: gapsMs,
    };
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** One greedy streamed completion: ms to its first token, and between the tokens after it. */
async function streamCompletion(
  baseUrl: string,
  model: string,
): Promise<{ firstTokenMs: number; gapsMs: number[] }> {
  const sent = performance.now();
  const res = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model,
      prompt: 'Once upon a time',
      max_tokens: Number(args['stream-tokens']),
      temperature: 0,
      ignore_eos: true,
      stream: true,
    }),
  });
  const arrivals: number[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    const events = buffered.split('\n\n');
    buffered = events.pop() ?? '';
    for (const e of events) if (e.startsWith('data: {')) arrivals.push(performance.now());
  }
  return { firstTokenMs: arrivals[0] - sent, gapsMs: arrivals.slice(1).map((t, i) => t - arrivals[i]) };
}

async function ensureModel(): Promise<string> {
  const dir = args['model-dir'] ?? join(ROOT, '.cache', 'bench', `tinyllama-f32-${numLayers}l`);
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) {
    progress(
      `writing the synthetic TinyLlama-shaped checkpoint (${numLayers} layers, F32, 2 shards) to ${dir}`,
    );
    await writeSyntheticModel(dir, { ...TINYLLAMA_SPEC, numLayers }, { shards: 2 });
  }
  return dir;
}

async function main(): Promise<void> {
  const modelDir = await ensureModel();
  const rounds = Number(args.rounds);
  const roots: ServerVariant[] = [
    { label: 'this tree, as npm start (huge pages)', root: ROOT, env: NPM_START_ENV },
  ];
  if (args['small-pages-too'])
    roots.push({ label: 'this tree, 4 KiB pages (no GLIBC_TUNABLES)', root: ROOT, env: SMALL_PAGES_ENV });
  if (args.before) roots.push({ label: 'before', root: resolve(args.before), env: NPM_START_ENV });
  const servers: ServerResult[] = [];
  const children: ChildResult[] = [];
  const saving: ServerVariant[] = [];
  if (args['packed-cache-too']) {
    // Its own cache folder: the user's ~/.cache/loom is neither read nor filled.
    const cacheHome = join(ROOT, '.cache', 'bench', 'xdg-cache');
    rmSync(join(cacheHome, 'loom'), { recursive: true, force: true });
    const env = { ...NPM_START_ENV, XDG_CACHE_HOME: cacheHome };
    const flags = ['--cache-packed-weights'];
    saving.push({
      label: 'this tree, --cache-packed-weights, first start (saves)',
      root: ROOT,
      env,
      flags,
      mustLog: 'packed weights saved to',
    });
    roots.push({
      label: 'this tree, --cache-packed-weights (maps)',
      root: ROOT,
      env,
      flags,
      mustLog: 'packed weights mapped from',
    });
    progress('server with --cache-packed-weights, first start: saves the packed session');
    servers.push(await measureServer(saving[0], modelDir));
  }
  for (let round = 0; round < rounds; round++) {
    for (const variant of roots) {
      progress(`round ${round + 1}: server ${variant.label}`);
      servers.push(await measureServer(variant, modelDir));
    }
    for (const variant of args['servers-only'] ? [] : VARIANTS) {
      progress(`round ${round + 1}: engine ${variant}`);
      const out = await runProcess(
        [
          '--import',
          'tsx',
          fileURLToPath(import.meta.url),
          '--child',
          variant,
          '--model-dir',
          modelDir,
          '--threads',
          String(threads),
        ],
        ROOT,
      );
      children.push(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
    }
  }

  const serverRows = [...saving, ...roots].map(({ label }) => {
    const runs = servers.filter((s) => s.label === label);
    return {
      server: label,
      'seconds to /health 200 (min / median / max)': fmtSpread(
        runs.map((r) => r.healthSeconds),
        1,
      ),
      'load + pool s': fmtSpread(
        runs.map((r) => r.phases.loadAndPoolSeconds ?? Number.NaN),
        1,
      ),
      'engine s': fmtSpread(
        runs.map((r) => r.phases.engineSeconds ?? Number.NaN),
        1,
      ),
      'RSS anon MB at 200': fmtSpread(runs.map((r) => r.ready.anonMb)),
      'RSS file MB at 200': fmtSpread(runs.map((r) => r.ready.fileMb)),
      'peak RSS MB': fmtSpread(runs.map((r) => r.ready.peakMb)),
      "first request's first token ms": fmtSpread(runs.map((r) => r.firstTokenMs)),
      'RSS anon / file MB after it':
        fmtSpread(runs.map((r) => r.afterFirst.anonMb)) +
        ' · ' +
        fmtSpread(runs.map((r) => r.afterFirst.fileMb)),
      'decode batch 1 ms/token, streamed (min / median / max)': fmtSpread(runs.flatMap((r) => r.decodeMs)),
    };
  });
  const engineRows = (args['servers-only'] ? [] : VARIANTS).map((variant) => {
    const runs = children.filter((c) => c.variant === variant);
    return {
      weights: variant,
      'load s': fmtSpread(
        runs.map((r) => r.loadSeconds),
        1,
      ),
      'engine s': fmtSpread(
        runs.map((r) => r.engineSeconds),
        1,
      ),
      'RSS anon MB': fmtSpread(runs.map((r) => r.ready.anonMb)),
      'RSS file MB': fmtSpread(runs.map((r) => r.ready.fileMb)),
      'peak RSS MB': fmtSpread(runs.map((r) => r.ready.peakMb)),
      'first step (64-token prefill) ms': fmtSpread(runs.map((r) => r.firstStepMs)),
      'decode b1 ms/step': fmtSpread(runs.flatMap((r) => r.decode.b1)),
      'decode b8 ms/step': fmtSpread(runs.flatMap((r) => r.decode.b8)),
    };
  });
  const fileLines = children[0]?.files.map(
    (f) =>
      `${f.file.split('/').pop()}: ${(f.bytes / 1e6).toFixed(0)} MB in ${f.seconds.toFixed(1)} s (${(f.bytes / 1e6 / f.seconds).toFixed(0)} MB/s), ${(f.fileBackedBytes / 1e6).toFixed(0)} MB left in the file for onnxruntime to map`,
  );
  writeBenchReport({
    name: args.name,
    title: `start-up of the onnx engine (TinyLlama shape, F32 checkpoint${serverFlags.length ? `, server ${serverFlags.join(' ')}` : ''})`,
    context: {
      ...machineContext(),
      'huge pages for malloc': `every server and engine process starts as npm start starts node (GLIBC_TUNABLES=${NPM_START_ENV.GLIBC_TUNABLES})${args['small-pages-too'] ? ', but the 4 KiB pages server (GLIBC_TUNABLES unset)' : ''}`,
      cpu: cpus()[0]?.model ?? 'unknown',
      model: `synthetic TinyLlama shape, ${numLayers} of 22 layers, F32, 2 safetensors shards (${modelDir})`,
      rounds,
      threads,
      'server flags': `--engine onnx --pool-size 512MiB ${serverFlags.join(' ')} (server threads: every core)`,
      spread:
        'min / median / max over rounds (decode: over every step of every round); variants interleave round by round',
    },
    rows: serverRows,
    tables:
      engineRows.length > 0
        ? [{ title: 'engine weight options, each in a fresh process ', rows: engineRows }]
        : [],
    chart: {
      unit: 's to ready (median)',
      bars: [
        ...[...saving, ...roots].map(({ label }) => ({
          label: `server ${label}: /health 200`,
          value: spread(servers.filter((s) => s.label === label).map((s) => s.healthSeconds)).median,
        })),
        ...(args['servers-only'] ? [] : VARIANTS).map((variant) => ({
          label: `engine ${variant}: load + engine`,
          value: spread(
            children.filter((c) => c.variant === variant).map((c) => c.loadSeconds + c.engineSeconds),
          ).median,
        })),
      ],
    },
    notes: [
      ...(fileLines ? [`first round's per-file progress (mapped-prepacked): ${fileLines.join('; ')}`] : []),
      ...(args['packed-cache-too']
        ? [
            '--cache-packed-weights servers keep their cache in .cache/bench/xdg-cache (XDG_CACHE_HOME), emptied before the first of them, which saves; the others map what it saved, from the page cache where the machine kept it (a start after a reboot reads the file from disk, as a first request then does)',
          ]
        : []),
    ],
  }).forEach((p) => {
    progress(`wrote ${p}`);
  });
}

if (args.child) await runChild(args.child as Variant, args['model-dir']!);
else await main();
