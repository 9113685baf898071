import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll } from 'vitest';
import type { EngineChoice } from '../../kernels/engine-factory.js';
import type { TargetModule } from '../../model/llama-modules.js';
import {
  type SyntheticAdapterSpec,
  syntheticConfig,
  TINY_SPEC,
  writeSyntheticAdapter,
  writeSyntheticModel,
} from '../../model/synthetic.js';
import type { LlmEngine } from '../../scheduler/llm-engine.js';
import { type AppOptions, buildApp } from '../../server/app.js';
import type { LoraModule } from '../../server/cli-options.js';
import { buildServingStack, type ServingStack, type StackOptions } from '../../server/serving-stack.js';

const ATTENTION: TargetModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
const MLP: TargetModule[] = ['gate_proj', 'up_proj', 'down_proj'];

/** Six adapters of different ranks and target modules, so one batch mixes all of them. */
export const TINY_ADAPTERS: SyntheticAdapterSpec[] = [
  { name: 'tiny-r2', rank: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'], seed: 11 },
  { name: 'tiny-r4', rank: 4, alpha: 8, targetModules: ATTENTION, seed: 12 },
  { name: 'tiny-r8', rank: 8, alpha: 16, targetModules: [...ATTENTION, ...MLP], seed: 13 },
  { name: 'tiny-r16', rank: 16, alpha: 16, targetModules: MLP, seed: 14, useRslora: true },
  { name: 'tiny-r3', rank: 3, alpha: 6, targetModules: ['o_proj', 'down_proj'], seed: 15 },
  // PEFT's rank_pattern / alpha_pattern: ranks 4, 8 and 16 and five scales inside one adapter.
  {
    name: 'tiny-pattern',
    rank: 8,
    alpha: 16,
    targetModules: [...ATTENTION, ...MLP],
    seed: 16,
    rankPattern: { q_proj: 4, 'model.layers.1.mlp.down_proj': 16 },
    alphaPattern: { v_proj: 4, 'model\\.layers\\.0\\.mlp\\..*': 32 },
  },
];

export const TINY_MODEL_NAME = 'tiny-base';

/** Writes the TINY synthetic model and its adapters under a fresh temporary directory. */
export async function writeTinyModel(): Promise<{
  root: string;
  modelDir: string;
  adapters: LoraModule[];
}> {
  const root = await mkdtemp(join(tmpdir(), 'loom-server-'));
  const modelDir = join(root, TINY_MODEL_NAME);
  await writeSyntheticModel(modelDir, TINY_SPEC);
  const config = syntheticConfig(TINY_SPEC);
  const adapters: LoraModule[] = [];
  for (const spec of TINY_ADAPTERS) {
    const dir = join(root, spec.name);
    await writeSyntheticAdapter(dir, config, spec);
    adapters.push({ name: spec.name, path: dir });
  }
  return { root, modelDir, adapters };
}

/** The tiny model and adapters, written before a suite's tests (beforeAll) and removed after them. */
export function useTinyModel(): { root: string; modelDir: string; adapters: LoraModule[] } {
  const model = { root: '', modelDir: '', adapters: [] as LoraModule[] };
  beforeAll(async () => {
    Object.assign(model, await writeTinyModel());
  });
  afterAll(async () => {
    await rm(model.root, { recursive: true, force: true });
  });
  return model;
}

export interface TinyServer {
  /** The temporary directory holding the model and adapters (removed by close). */
  root: string;
  app: FastifyInstance;
  stack: ServingStack;
  /** The generation service behind the stack, for tests that reach the engine (device loss). */
  llm: LlmEngine;
  client: OpenAI;
  baseURL: string;
  /** A JSON POST through Fastify's inject (no socket): its status and parsed body. */
  // biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the endpoint answers
  post(url: string, body: object): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

/**
 * startTinyServer for a whole suite: started before its tests (beforeAll), closed after them;
 * the returned function gives the running server.
 */
export function useTinyServer(...args: Parameters<typeof startTinyServer>): () => TinyServer {
  let server: TinyServer | undefined;
  beforeAll(async () => {
    server = await startTinyServer(...args);
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => {
    if (!server) throw new Error('the tiny server is not started (call useTinyServer at the top of a suite)');
    return server;
  };
}

/** The real stack (loader, pool, engine, scheduler) behind a real socket on 127.0.0.1:0. */
export async function startTinyServer(
  engine: EngineChoice = 'onnx',
  overrides: Partial<StackOptions> | ((root: string) => Partial<StackOptions>) = {},
  appOptions: Omit<AppOptions, 'stack'> = {},
): Promise<TinyServer> {
  const { root, modelDir, adapters } = await writeTinyModel();
  const extra = typeof overrides === 'function' ? overrides(root) : overrides;
  const stack = await buildServingStack(
    {
      modelDir,
      loraModules: adapters,
      servedModelName: null,
      maxModelLen: 256,
      maxNumSeqs: 16,
      maxNumBatchedTokens: 512,
      engine,
      poolSize: '8MiB',
      chatTemplateFile: null,
      seed: 1234,
      ...extra,
    },
    { info: () => {} },
  );
  const app = buildApp({ ...appOptions, stack });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  const baseURL = `http://127.0.0.1:${address.port}/v1`;
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  return {
    root,
    app,
    stack,
    llm: stack.scheduler as LlmEngine,
    client,
    baseURL,
    async post(url, body) {
      const res = await app.inject({ method: 'POST', url, payload: body });
      return { status: res.statusCode, body: res.json() };
    },
    async close() {
      await app.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
