/**
 * llama.cpp in a process of its own, for bench/llama-cpp-side-by-side.ts --llama-cpp-process own:
 * one GGUF file, driven over the IPC channel ({init}, then {generate} as often as asked, then
 * {close}), so its threads and memory do not share a process with Loom's engines.
 */
import { llamaCppGenerator, loadLlamaCpp } from './node-llama-cpp.js';

type Request =
  | { kind: 'init'; dir: string; modelPath: string; contextSize: number; batchSize: number; threads: number }
  | { kind: 'generate'; tokens: number[]; count: number }
  | { kind: 'close' };

let generator: Awaited<ReturnType<typeof llamaCppGenerator>> | null = null;
const reply = (message: unknown) => process.send?.(message);

process.on('message', async (request: Request) => {
  try {
    if (request.kind === 'init') {
      const llama = await loadLlamaCpp(request.dir);
      generator = await llamaCppGenerator(llama, request.modelPath, request);
      reply({ kind: 'ready' });
    } else if (request.kind === 'generate') {
      reply({ kind: 'generated', ...(await generator!.generate(request.tokens, request.count)) });
    } else {
      await generator?.close();
      reply({ kind: 'closed' });
      process.exit(0);
    }
  } catch (error) {
    reply({ kind: 'error', message: (error as Error).message });
  }
});
