/**
 * Host copy → pool pages, the copy a registry pool load makes (writeAdapterRows, as the onnx and
 * reference engines run it; webgpu stages the same pages through fillAdapterPages). A
 * TinyLlama-shaped adapter on all 7 modules, per host dtype, three ways, interleaved round by round:
 *   - widen first: the whole adapter widened to f32, then written (the path before F16/BF16 host
 *     copies were widened page by page; F32 copies are not widened at all, so no row);
 *   - widen while writing: a rank-row of A and one module's B at a time;
 *   - into fresh pages: the same, into pool storage never written before, so every page of it
 *     faults in on first touch (what a cold pool pays until each page has been used once).
 *
 * With --before DIR (a checkout of an earlier tree, e.g. `git worktree add /tmp/before <commit>`),
 * that tree's writeAdapterRows runs beside this one's, interleaved, as the way "previous tree".
 *
 *   npx tsx bench/adapter-pool-write.ts [--ranks 16,64] [--rounds 5] [--before DIR]
 */
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { adapterPageCount, layoutAdapter, writeAdapterRows } from '../memory/adapter-layout.js';
import { PagePool } from '../memory/page-pool.js';
import type { TensorDtype } from '../model/float-convert.js';
import { TARGET_MODULES } from '../model/llama-modules.js';
import { type StoredLoraAdapter, storeAdapter, widenAdapter } from '../model/stored-adapter.js';
import { syntheticAdapter, syntheticConfig, TINYLLAMA_SPEC } from '../model/synthetic.js';
import { machineContext, writeBenchReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    ranks: { type: 'string', default: '16,64' },
    rounds: { type: 'string', default: '5' },
    before: { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const DTYPES: TensorDtype[] = ['F32', 'F16', 'BF16'];
type Way = 'widen first' | 'widen while writing' | 'previous tree' | 'into fresh pages';

function progress(message: string): void {
  process.stderr.write(`[adapter-pool-write] ${message}\n`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The earlier tree's writeAdapterRows (same signature), and the commit it is at. */
async function beforeTree(dir: string): Promise<{ write: typeof writeAdapterRows; commit: string }> {
  const root = resolve(dir);
  const module = await import(pathToFileURL(join(root, 'memory/adapter-layout.ts')).href);
  const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
  }).trim();
  return { write: module.writeAdapterRows, commit };
}

async function main(): Promise<void> {
  const before = args.before ? await beforeTree(args.before) : null;
  const config = syntheticConfig(TINYLLAMA_SPEC);
  const rows: Record<string, string | number>[] = [];
  for (const rank of args.ranks.split(',').map(Number)) {
    const f32 = syntheticAdapter(config, {
      name: `r${rank}`,
      rank,
      alpha: 2 * rank,
      targetModules: [...TARGET_MODULES],
      seed: rank,
    });
    const numPages = adapterPageCount(config, f32);
    // Page 0 is the pool's reserved page.
    const pool = new PagePool(numPages + 1, config.hiddenSize);
    const layout = layoutAdapter(config, f32, pool.allocate(numPages, 'adapter'));
    const poolBytes = numPages * pool.pageSize * 4;
    const touched = new Float32Array(pool.numPages * pool.pageSize).fill(1);
    const hosts = new Map<TensorDtype, StoredLoraAdapter>(DTYPES.map((d) => [d, storeAdapter(f32, d)]));
    const ways = (dtype: TensorDtype): Way[] => [
      ...(dtype === 'F32' ? [] : (['widen first'] as const)),
      'widen while writing',
      ...(before ? (['previous tree'] as const) : []),
      'into fresh pages',
    ];
    const times = new Map<string, number[]>();
    const run = (dtype: TensorDtype, way: Way): number => {
      const host = hosts.get(dtype)!;
      const started = performance.now();
      if (way === 'widen first')
        writeAdapterRows(touched, pool.pageSize, layout, storeAdapter(widenAdapter(host)));
      else if (way === 'widen while writing') writeAdapterRows(touched, pool.pageSize, layout, host);
      else if (way === 'previous tree') before!.write(touched, pool.pageSize, layout, host);
      else writeAdapterRows(new Float32Array(touched.length), pool.pageSize, layout, host);
      return performance.now() - started;
    };
    progress(`rank ${rank}: ${(poolBytes / 2 ** 20).toFixed(0)} MiB of pages, ${ROUNDS} rounds`);
    for (let round = -1; round < ROUNDS; round++)
      for (const dtype of DTYPES)
        for (const way of ways(dtype)) {
          const ms = run(dtype, way);
          if (round < 0) continue;
          const key = `${dtype}|${way}`;
          times.set(key, [...(times.get(key) ?? []), ms]);
        }
    for (const dtype of DTYPES) {
      const host = hosts.get(dtype)!;
      for (const way of ways(dtype)) {
        const ms = times.get(`${dtype}|${way}`)!;
        const row = {
          rank,
          'host dtype': dtype,
          way,
          'host MiB': Number((host.numBytes / 2 ** 20).toFixed(1)),
          'f32 temporary MiB': way === 'widen first' ? Number(((host.numBytes * 2) / 2 ** 20).toFixed(1)) : 0,
          'median ms': Number(median(ms).toFixed(1)),
          'min ms': Number(Math.min(...ms).toFixed(1)),
          'pool GB/s (median)': Number((poolBytes / (median(ms) / 1000) / 1e9).toFixed(2)),
        };
        progress(`rank ${rank} ${dtype} ${way}: ${row['median ms']} ms, ${row['pool GB/s (median)']} GB/s`);
        rows.push(row);
      }
    }
  }
  const files = writeBenchReport({
    name: 'adapter-pool-write',
    title: 'Adapter host copy → pool pages (TinyLlama shape, all 7 modules)',
    context: {
      ...machineContext(),
      model: `synthetic tinyllama shape (hidden ${config.hiddenSize}, ${config.numLayers} layers)`,
      rounds: ROUNDS,
      ...(before ? { 'previous tree': before.commit } : {}),
    },
    rows,
    chart: {
      unit: 'ms per adapter written (median)',
      bars: rows.map((r) => ({
        label: `r${r.rank} ${r['host dtype']} ${r.way}`,
        value: Number(r['median ms']),
      })),
    },
    notes: [
      'One thread (the registry writes pages on the step loop between steps, or overlapping a step the engine runs elsewhere). The ways and dtypes interleaved round by round in one process, after one unrecorded round.',
      'widen first: what a pool load of an F16/BF16 host copy did before it was widened page by page; its f32 temporary (twice the host copy) lived for the copy.',
      ...(before
        ? [
            `previous tree: writeAdapterRows of ${before.commit}, on the same host copies and pages, interleaved with this tree's.`,
          ]
        : []),
      'into fresh pages: pool storage allocated and never written, so the kernel maps and zeroes every page on first touch; a pool reaches the faster rows once each of its pages has been used.',
      'pool GB/s: bytes of pool pages written (rows padded to whole pages) per second.',
    ],
  });
  progress(`wrote ${files.join(', ')}`);
}

await main();
