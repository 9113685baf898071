/**
 * Loom's onnx engine next to llama.cpp on the same weights, in one run: a synthetic TinyLlama-
 * shaped model (or fewer layers) built in memory, served by Loom at f32, f16 and int8 and written as
 * GGUF (f32, f16, q8_0 — bench/llama-cpp/gguf-writer.ts) for llama.cpp through node-llama-cpp.
 * Each round runs every system in turn (a 512-token prefill, then decode steps at batch 1 after a
 * 64-token context), so load from elsewhere hits them alike; min / median / max are kept. Greedy
 * tokens after the same prompt are compared with Loom f32's. Just before each decode the
 * machine's memory-read bandwidth is measured (memory-bandwidth.ts), so each system's decode is
 * also given as a share of its bound at that moment: the weight bytes it reads per step over it.
 *
 * node-llama-cpp is not a dependency of Loom: install it in a scratch folder and point at it,
 *   npm install --prefix /tmp/llamacpp --ignore-scripts node-llama-cpp@3
 *   npx tsx bench/llama-cpp-side-by-side.ts --llama-cpp /tmp/llamacpp [--layers 22] [--rounds 5]
 *     [--systems loom-int8,llama-q8_0] [--label NAME]
 *
 * --llama-cpp-process own runs llama.cpp in a child process (llama-cpp/llama-cpp-child.ts), as a
 * separate server would be, so its threads and memory do not share a process with Loom's engines;
 * shared (the default) loads it into this one.
 *
 * --systems runs some of them (default all: loom-f32, loom-f16, loom-int8, loom-int8-base,
 * llama-f32, llama-f16, llama-q8_0), so a pair can get more rounds in the same time; greedy tokens
 * are then compared with the first one's. --label names the report bench/results/
 * llama-cpp-side-by-side-<label>.*.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { SequenceStep } from '../kernels/engine.js';
import { OnnxEngine } from '../kernels/onnx/onnx-engine.js';
import { decodeWeightBytes, type WeightFormat } from '../kernels/weight-quantization.js';
import { KvCache } from '../memory/kv-cache.js';
import { kvLayout } from '../memory/kv-layout.js';
import { PagePool } from '../memory/page-pool.js';
import type { LlamaConfig } from '../model/llama-config.js';
import { syntheticWeights, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { type GgufWeightType, writeGguf } from './llama-cpp/gguf-writer.js';
import { llamaCppGenerator, loadLlamaCpp, type TimedGeneration } from './llama-cpp/node-llama-cpp.js';
import { ReadBandwidthProbe } from './memory-bandwidth.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    'llama-cpp': { type: 'string', default: '/tmp/llamacpp' },
    layers: { type: 'string', default: String(TINYLLAMA_SPEC.numLayers) },
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    systems: { type: 'string', default: 'all' },
    label: { type: 'string', default: '' },
    'llama-cpp-process': { type: 'string', default: 'shared' },
  },
});
if (!['shared', 'own'].includes(args['llama-cpp-process']))
  throw new Error('--llama-cpp-process: shared (in this process, the default) or own (a child process)');
const ROUNDS = Number(args.rounds);
const STEPS = Number(args.steps);
const THREADS = Number(args.threads);
const PREFILL = 512;
const CONTEXT = 64;
const GREEDY = 8;
const BANDWIDTH_PASSES = 3;
const SYSTEM_KEYS = [
  'loom-f32',
  'loom-f16',
  'loom-int8',
  'loom-int8-base',
  'llama-f32',
  'llama-f16',
  'llama-q8_0',
];
const chosen = args.systems === 'all' ? SYSTEM_KEYS : args.systems.split(',');
for (const key of chosen)
  if (!SYSTEM_KEYS.includes(key))
    throw new Error(`--systems: ${key} is not one of ${SYSTEM_KEYS.join(', ')}`);
const wanted = (key: string) => chosen.includes(key);

function progress(message: string): void {
  process.stderr.write(`[llama-cpp-side-by-side] ${message}\n`);
}

/**
 * One system under test: a 512-token prefill's seconds, then decode steps' ms, and greedy tokens;
 * `stepBytes`: the weight bytes one decode step at batch 1 reads (linear layers and lm_head).
 */
interface System {
  label: string;
  stepBytes: number;
  prefill(tokens: number[]): Promise<number>;
  decode(context: number[], steps: number): Promise<{ ms: number[]; tokens: number[] }>;
  close(): Promise<void>;
}

const prompt = (n: number, seed: number, vocab: number) =>
  Array.from({ length: n }, (_, i) => 259 + ((seed * 7919 + i * 104729) % (vocab - 259)));

/**
 * Loom's onnx engine in `format`; `loraLayers: false` builds it as a server with no adapter source
 * does (kernels/engine-factory.ts servesAdapters), with no LoRA nodes in its step graph.
 */
async function loomSystem(
  weights: ReturnType<typeof syntheticWeights>,
  format: WeightFormat,
  cacheDir: string,
  loraLayers = true,
): Promise<System> {
  const config = weights.config;
  const layout = kvLayout(config);
  const pagesPerSequence = (Math.ceil((PREFILL + 1) / layout.tokensPerPage) + 1) * layout.pagesPerBlock;
  const pool = new PagePool(1 + 4 * pagesPerSequence, config.hiddenSize);
  const engine = await OnnxEngine.create(weights, pool, {
    threads: THREADS,
    weightFormat: format,
    // As a server's: encoded once into the cache file, which onnxruntime then maps.
    ...(format === 'f32' ? {} : { weightCache: { dir: cacheDir, checkpoint: 'side-by-side' } }),
    ...(loraLayers ? {} : { loraModules: [] }),
  });
  const kv = new KvCache(pool, layout);
  let nextId = 1;
  const run = async (id: number, tokens: number[], startPos: number) => {
    if (!kv.reserve(id, startPos + tokens.length)) throw new Error('bench pool too small');
    const sequences: SequenceStep[] = [
      { seqId: id, tokens, startPos, pageTable: kv.pageTable(id), adapter: null, logits: 'last' },
    ];
    const logits = await engine.step({ sequences });
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  };
  return {
    label: `Loom onnx ${format}${loraLayers ? '' : ', no adapter source'}`,
    stepBytes: decodeWeightBytes(config, format),
    async prefill(tokens) {
      const id = nextId++;
      const t0 = performance.now();
      await run(id, tokens, 0);
      kv.free(id);
      return (performance.now() - t0) / 1000;
    },
    async decode(context, steps) {
      const id = nextId++;
      let next = await run(id, context, 0);
      const ms: number[] = [];
      const tokens = [next];
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        next = await run(id, [next], context.length + s);
        ms.push(performance.now() - t0);
        tokens.push(next);
      }
      kv.free(id);
      return { ms, tokens };
    },
    close: () => engine.close(),
  };
}

/** llama.cpp's bytes per decode step: q8_0 stores 32 weights as 32 int8 and one f16 scale. */
function ggufStepBytes(config: LlamaConfig, type: GgufWeightType): number {
  if (type !== 'q8_0') return decodeWeightBytes(config, type);
  return (decodeWeightBytes(config, 'f32') / 4) * (34 / 32);
}

type Generator = Awaited<ReturnType<typeof llamaCppGenerator>>;

/** llama.cpp on one GGUF file in a child process (llama-cpp/llama-cpp-child.ts), driven over IPC. */
async function childGenerator(dir: string, modelPath: string, contextOptions: object): Promise<Generator> {
  const child = fork(join(import.meta.dirname, 'llama-cpp', 'llama-cpp-child.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ask = <T>(request: object): Promise<T> =>
    new Promise((resolve, reject) => {
      child.once('message', (message: { kind: string; message?: string }) =>
        message.kind === 'error' ? reject(new Error(message.message)) : resolve(message as T),
      );
      child.send(request);
    });
  await ask({ kind: 'init', dir, modelPath, ...contextOptions });
  return {
    generate: (tokens, count) => ask<TimedGeneration>({ kind: 'generate', tokens, count }),
    close: async () => {
      await ask({ kind: 'close' });
    },
  };
}

async function llamaCppSystems(
  dir: string,
  config: LlamaConfig,
  files: Array<[GgufWeightType, string]>,
): Promise<System[]> {
  const ownProcess = args['llama-cpp-process'] === 'own';
  const llama = ownProcess ? null : await loadLlamaCpp(dir);
  const contextOptions = { contextSize: PREFILL + CONTEXT, batchSize: PREFILL, threads: THREADS };
  const systems: System[] = [];
  for (const [type, path] of files) {
    // Timestamps come from the process that generates: only their differences are used.
    const { generate, close } = llama
      ? await llamaCppGenerator(llama, path, contextOptions)
      : await childGenerator(dir, path, contextOptions);
    systems.push({
      label: `llama.cpp ${type}${ownProcess ? ', own process' : ''}`,
      stepBytes: ggufStepBytes(config, type),
      async prefill(tokens) {
        const { t0, at } = await generate(tokens, 1);
        return (at[0] - t0) / 1000;
      },
      async decode(contextTokens, steps) {
        const { at, out } = await generate(contextTokens, steps + 1);
        return { ms: at.slice(1).map((t, i) => t - at[i]), tokens: out };
      },
      close,
    });
  }
  return systems;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const fmt = (x: { min: number; median: number; max: number }, digits: number) =>
  `${x.min.toFixed(digits)} / ${x.median.toFixed(digits)} / ${x.max.toFixed(digits)}`;

/**
 * Every system over one synthetic model, its GGUF files written into `dir`. The model's arrays
 * are not kept past this (4 GB at f32): what each system needs, it has copied or mapped.
 */
async function buildSystems(dir: string): Promise<{ systems: System[]; vocab: number }> {
  const spec = { ...TINYLLAMA_SPEC, numLayers: Number(args.layers) };
  progress(`synthetic TinyLlama shape, ${spec.numLayers} layers, ${THREADS} threads`);
  const weights = syntheticWeights(spec);
  const files: Array<[GgufWeightType, string]> = [];
  for (const type of ['f32', 'f16', 'q8_0'] as const) {
    if (!wanted(`llama-${type}`)) continue;
    progress(`writing GGUF ${type}`);
    const path = join(dir, `model-${type}.gguf`);
    writeGguf(path, weights, type);
    files.push([type, path]);
  }
  progress('creating the engines');
  const systems: System[] = [];
  for (const format of ['f32', 'f16', 'int8'] as const)
    if (wanted(`loom-${format}`)) systems.push(await loomSystem(weights, format, dir));
  if (wanted('loom-int8-base')) systems.push(await loomSystem(weights, 'int8', dir, false));
  if (files.length > 0) systems.push(...(await llamaCppSystems(args['llama-cpp'], weights.config, files)));
  return { systems, vocab: weights.config.vocabSize };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'loom-gguf-'));
  try {
    const { systems, vocab } = await buildSystems(dir);
    const probe = await ReadBandwidthProbe.create(THREADS);
    const prefills = systems.map(() => [] as number[]);
    const decodes = systems.map(() => [] as number[]);
    /** Per system and round: the bandwidth measured just before its decode, and that decode's median step. */
    const paired = systems.map(() => [] as Array<{ gbps: number; ms: number }>);
    const greedy = systems.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      progress(`round ${round + 1}/${ROUNDS}`);
      for (const [i, system] of systems.entries()) {
        prefills[i].push(await system.prefill(prompt(PREFILL, round, vocab)));
        const gbps = await probe.best(BANDWIDTH_PASSES);
        const { ms, tokens } = await system.decode(prompt(CONTEXT, 100 + round, vocab), STEPS);
        decodes[i].push(...ms);
        paired[i].push({ gbps, ms: stats(ms).median });
        if (round === 0) greedy[i] = tokens.slice(0, GREEDY);
      }
      progress(`  memory read ${fmt(stats(paired.map((p) => p[round].gbps)), 1)} GB/s (min/med/max)`);
    }
    for (const system of systems) await system.close();
    await probe.close();
    const allGbps = stats(paired.flat().map((p) => p.gbps));
    const rows = systems.map((system, i) => {
      const same = greedy[i].filter((t, k) => t === greedy[0][k]).length;
      // Each round's bound (weight bytes over the bandwidth just measured) over its median step.
      const shares = paired[i].map((p) => (100 * system.stepBytes) / (p.gbps * 1e6) / p.ms);
      return {
        system: system.label,
        'prefill 512 tok/s min/med/max': fmt(stats(prefills[i].map((s) => PREFILL / s)), 1),
        'decode batch 1 ms/step min/med/max': fmt(stats(decodes[i]), 1),
        'weights read per step, GB': (system.stepBytes / 1e9).toFixed(2),
        'memory read GB/s beside its decodes, min/med/max': fmt(stats(paired[i].map((p) => p.gbps)), 1),
        'share of the bandwidth bound, % min/med/max': fmt(stats(shares), 0),
        [`greedy tokens equal to ${systems[0].label}'s (of ${GREEDY})`]: same,
      };
    });
    const bars = systems.map((system, i) => ({ label: system.label, value: stats(decodes[i]).median }));
    const files2 = writeBenchReport({
      name: args.label ? `llama-cpp-side-by-side-${args.label}` : 'llama-cpp-side-by-side',
      title: 'Loom (onnx engine) and llama.cpp on the same weights',
      context: {
        ...machineContext(),
        model: `synthetic TinyLlama shape, ${args.layers} of 22 layers`,
        threads: THREADS,
        rounds: ROUNDS,
        'decode steps per round': STEPS,
        'memory read bandwidth, GB/s min/med/max over the run': fmt(allGbps, 1),
        'llama.cpp': 'node-llama-cpp 3 (CPU build), GGUF written by bench/llama-cpp/gguf-writer.ts',
        'llama.cpp process':
          args['llama-cpp-process'] === 'own'
            ? "its own (a child process per GGUF file, driven over IPC; its timestamps are that process's)"
            : "this one (beside Loom's engines)",
      },
      rows,
      chart: { unit: 'decode batch 1, median ms/step', bars },
      notes: [
        'Rounds run every system in turn; a round is a 512-token prefill, then a 64-token context and decode steps at batch 1 (greedy).',
        'Loom int8: MatMulNBits (blocks of 128, activations rounded to int8 too), its codes mapped by onnxruntime from the encoded-weight cache file as a server maps them; llama.cpp q8_0: blocks of 32 with an f16 scale. Greedy agreement of an 8-bit format with f32 is not expected to be exact on a random-weight model.',
        'no adapter source: the engine as a server started without --lora-modules, --lora-dir or --lora-root builds it, its step graph without LoRA nodes (a LoRA server carries them on every step, adapters or not); the other Loom rows are the LoRA-ready graph, running steps without adapters.',
        `memory read bandwidth: just before each system's decode in each round, the best of ${BANDWIDTH_PASSES} passes of ${THREADS} threads over ${(probe.bytes / 2 ** 20).toFixed(0)} MiB (bench/memory-bandwidth.ts). Share of the bound: that round's bound (weight bytes read per step over that bandwidth) over that round's median step, min/med/max over the rounds; the machine's bandwidth moves with its other tenants, so a bound measured at another hour says little.`,
        'llama.cpp decode times are the gaps between the tokens node-llama-cpp yields (sampling and its JS included), as a client sees them; Loom decode times are engine.step calls with a host argmax.',
      ],
    });
    progress(`wrote ${files2.join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
