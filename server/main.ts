// First: switches off onnxruntime's telemetry before anything loads it.
import '../kernels/onnx/no-telemetry.js';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../model/llama-config.js';
import { ModelFormatError } from '../model/model-format-error.js';
import { ensureDefaultModel } from '../model/synthetic.js';
import { buildApp } from './app.js';
import { CliError, type CliOptions, parseCliOptions } from './cli-options.js';
import { assertEngineAvailable } from './engine-factory.js';
import { buildServingStack, type ServedAdapter } from './serving-stack.js';
import { drainAndClose } from './shutdown.js';
import { StartupError } from './startup-error.js';

/**
 * The process around the app: flags, logger, listening, loading, signals, exit codes
 * (0 after a clean shutdown, 1 for a start-up problem, 2 for a bad command line).
 */

const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../.cache/loom', import.meta.url));

/** Errors the user fixes by changing a flag or a file: one line, no stack trace. */
function isUserFacing(error: unknown): error is Error {
  return (
    error instanceof StartupError ||
    error instanceof ModelFormatError ||
    error instanceof ConfigError ||
    error instanceof CliError
  );
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

/** --model, or the embedded synthetic model (written once into the cache) with its demo adapters. */
async function resolveModel(options: CliOptions): Promise<{ modelDir: string; adapters: ServedAdapter[] }> {
  if (options.model !== null) return { modelDir: options.model, adapters: options.loraModules };
  const cacheDir = process.env.LOOM_CACHE_DIR || DEFAULT_CACHE_DIR;
  const embedded = await ensureDefaultModel(cacheDir);
  const adapters = options.loraModules.length
    ? options.loraModules
    : embedded.adapters.map(({ name, dir }) => ({ name, path: dir }));
  return { modelDir: embedded.modelDir, adapters };
}

async function main(): Promise<void> {
  let command: ReturnType<typeof parseCliOptions>;
  try {
    command = parseCliOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`loom: ${error.message}`);
    process.exit(2);
  }
  if (command.kind === 'help') {
    process.stdout.write(command.text);
    return;
  }
  const options = command.options;
  assertEngineAvailable(options.engine, options.dtype);

  const app = buildApp({
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
    maxN: options.maxN,
    connections: {
      keepAliveTimeoutMs: options.timeoutKeepAliveSeconds * 1000,
      maxConnections: options.maxConnections,
    },
  });
  let isShuttingDown = false;
  const shutDown = (signal: NodeJS.Signals) => {
    if (isShuttingDown) {
      app.log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    isShuttingDown = true;
    app.log.info({ signal }, 'shutting down');
    drainAndClose(app, options.shutdownTimeoutSeconds * 1000).then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutDown);
  process.on('SIGTERM', shutDown);

  await app.listen({ host: options.host, port: options.port });
  const { modelDir, adapters } = await resolveModel(options);
  const stack = await buildServingStack(
    {
      modelDir,
      loraModules: adapters,
      servedModelName: options.servedModelName,
      maxModelLen: options.maxModelLen,
      maxNumSeqs: options.maxNumSeqs,
      maxNumBatchedTokens: options.maxNumBatchedTokens,
      engine: options.engine,
      dtype: options.dtype,
      poolSize: options.poolSize,
      chatTemplateFile: options.chatTemplate,
      seed: options.seed,
    },
    app.log,
  );
  if (isShuttingDown) {
    await stack.close();
    return;
  }
  app.loom.attach(stack);
  app.log.info({ model: stack.modelName, adapters: stack.adapters.map((a) => a.name) }, 'serving');
}

main().catch((error: unknown) => {
  console.error(
    isUserFacing(error)
      ? `loom: ${oneLine(error.message)}`
      : `loom: start-up failed: ${oneLine(String((error as Error)?.message ?? error))}`,
  );
  process.exit(1);
});
