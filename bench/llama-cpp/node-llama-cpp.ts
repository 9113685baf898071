import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * node-llama-cpp, from the scratch folder it was installed into (it is not a Loom dependency:
 * `npm install --prefix /tmp/llamacpp --ignore-scripts node-llama-cpp@3`), CPU build, quiet.
 * Typed only as far as the benches use it.
 */
export interface LlamaCppSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number }): AsyncIterable<number>;
}
export interface LlamaCppContext {
  getSequence(): LlamaCppSequence;
  dispose(): Promise<void>;
}
export interface LlamaCppModel {
  createContext(options: {
    contextSize: number;
    batchSize: number;
    threads: number;
    sequences?: number;
    lora?: { adapters: Array<{ filePath: string; scale?: number }> };
  }): Promise<LlamaCppContext>;
  dispose(): Promise<void>;
}
export interface LlamaCpp {
  loadModel(options: { modelPath: string }): Promise<LlamaCppModel>;
}

/** A generation as a client sees it: when it was asked for, when each token came, the tokens. */
export interface TimedGeneration {
  t0: number;
  at: number[];
  out: number[];
}

/**
 * One sequence of a context on one GGUF file, generating greedily from a fresh history each time
 * (timestamps are this process's performance.now()).
 */
export async function llamaCppGenerator(
  llama: LlamaCpp,
  modelPath: string,
  options: { contextSize: number; batchSize: number; threads: number },
): Promise<{ generate(tokens: number[], count: number): Promise<TimedGeneration>; close(): Promise<void> }> {
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext(options);
  const sequence = context.getSequence();
  return {
    async generate(tokens, count) {
      await sequence.clearHistory();
      const t0 = performance.now();
      const at: number[] = [];
      const out: number[] = [];
      for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
        at.push(performance.now());
        out.push(token);
        if (out.length >= count) break;
      }
      return { t0, at, out };
    },
    async close() {
      await context.dispose();
      await model.dispose();
    },
  };
}

export async function loadLlamaCpp(dir: string): Promise<LlamaCpp> {
  const require = createRequire(join(dir, 'package.json'));
  const { getLlama } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
  return getLlama({ gpu: false, build: 'never', logLevel: 'error' });
}
