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

export async function loadLlamaCpp(dir: string): Promise<LlamaCpp> {
  const require = createRequire(join(dir, 'package.json'));
  const { getLlama } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
  return getLlama({ gpu: false, build: 'never', logLevel: 'error' });
}
