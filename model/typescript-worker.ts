import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running a TypeScript module of Loom's. Loom runs from its sources through tsx,
 * whose loader the main thread registers with `--import tsx`; on Node 20 a worker gets neither
 * that registration nor the flag's effect (it fails with ERR_UNKNOWN_FILE_EXTENSION, measured),
 * so the worker registers tsx itself before importing the module. Dynamic imports only: the
 * bootstrap is evaluated as a script. A runtime where that fails emits 'error' on the worker,
 * which callers treat as "no worker".
 */
export function startTypeScriptWorker(module: URL, options: Omit<WorkerOptions, 'eval'> = {}): Worker {
  // Resolved here: an evaluated script resolves bare names from the working directory, not Loom's.
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(module.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
