// First: switches off onnxruntime's telemetry before anything loads it.
import '../kernels/onnx/no-telemetry.js';
import { readdir, stat } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { join } from 'node:path';
import { assertEngineAvailable } from '../kernels/engine-factory.js';
import { verifyDefaultModel } from '../model/default-model.js';
import { ConfigError } from '../model/llama-config.js';
import { ModelFormatError } from '../model/model-format-error.js';
import { StartupError } from '../model/startup-error.js';
import { buildApp } from './app.js';
import { CliError, type CliOptions, isSwitch, type LoraModule, parseCliOptions } from './cli-options.js';
import { expandConfigFile } from './config-file-args.js';
import { hugePagesNotice } from './huge-pages.js';
import { captureStderr, type StderrCapture } from './native-stderr.js';
import { buildServingStack } from './serving-stack.js';
import { drainAndClose } from './shutdown.js';
import { STATS_INTERVAL_MS } from './stats-log.js';
import { readTlsFiles, refreshTlsOnChange } from './tls.js';
import { clearSocketPath, openSocketToLocalUsers } from './unix-socket.js';
import { LOOM_VERSION } from './version.js';

/**
 * The process around the app: flags, logger, listening, loading, signals, exit codes
 * (0 after a clean shutdown, 1 for a start-up problem, 2 for a bad command line).
 */

/** Once the app's logger exists, descriptor 2 is read into it (native warnings become JSON lines). */
let stderrCapture: StderrCapture | null = null;

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

/**
 * --model, or the embedded trained model (checked against its SHA256SUMS) with its demo adapters
 * (unless adapters are given by --lora-modules or --lora-dir).
 */
async function resolveModel(options: CliOptions): Promise<{ modelDir: string; adapters: LoraModule[] }> {
  if (options.model !== null) return { modelDir: options.model, adapters: options.loraModules };
  const embedded = await verifyDefaultModel();
  const adapters =
    options.loraModules.length || options.loraDir
      ? options.loraModules
      : embedded.adapters.map(({ name, dir }) => ({ name, path: dir }));
  return { modelDir: embedded.modelDir, adapters };
}

/** The checkpoint's safetensors shards and their size (null when the folder cannot be read: loading says why). */
async function weightFiles(modelDir: string): Promise<{ shards: number; bytes: number } | null> {
  try {
    const names = (await readdir(modelDir)).filter((name) => name.endsWith('.safetensors'));
    const sizes = await Promise.all(names.map(async (name) => (await stat(join(modelDir, name))).size));
    return { shards: names.length, bytes: sizes.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}

/** vLLM's JSON --lora-modules may name the base model; Loom serves one, so it must be that one. */
function checkBaseModelNames(adapters: readonly LoraModule[], modelName: string): void {
  for (const { name, baseModelName } of adapters) {
    if (baseModelName !== undefined && baseModelName !== modelName)
      throw new StartupError(
        `--lora-modules: adapter "${name}" names base_model_name "${baseModelName}", but the served model is "${modelName}"`,
      );
  }
}

async function main(): Promise<void> {
  let command: ReturnType<typeof parseCliOptions>;
  try {
    command = parseCliOptions(expandConfigFile(process.argv.slice(2), isSwitch), process.env);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`loom: ${error.message}`);
    process.exit(2);
  }
  if (command.kind === 'help') {
    process.stdout.write(command.text);
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(`${LOOM_VERSION}\n`);
    return;
  }
  const options = command.options;
  assertEngineAvailable(options.engine, options.dtype, options.loraMode, options.quantization);

  let https: Awaited<ReturnType<typeof readTlsFiles>> | null = null;
  try {
    if (options.tls) https = await readTlsFiles(options.tls);
    if (options.uds) await clearSocketPath(options.uds);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`loom: ${error.message}`);
    process.exit(2);
  }

  const app = buildApp({
    https,
    logger: { level: options.logLevel },
    maxN: options.maxN,
    maxLogprobs: options.maxLogprobs,
    maxStoredResponses: options.maxStoredResponses,
    reasoningParser: options.reasoningParser,
    returnTokensAsTokenIds: options.returnTokensAsTokenIds,
    trustRequestChatTemplate: options.trustRequestChatTemplate,
    defaultChatTemplateKwargs: options.defaultChatTemplateKwargs,
    forceIncludeUsage: options.forceIncludeUsage,
    tokenizerInfoEndpoint: options.enableTokenizerInfoEndpoint,
    accessLog: options.accessLog,
    devEndpoints: options.devEndpoints,
    accessLogExcludedPaths: options.accessLogExcludedPaths,
    excludeToolsWhenToolChoiceNone: options.excludeToolsWhenToolChoiceNone,
    chatTemplateContentFormat: options.chatTemplateContentFormat,
    responseRole: options.responseRole,
    watermark: { gamma: options.watermarkGamma, delta: options.watermarkDelta },
    toolCallParser: options.enableAutoToolChoice ? options.toolCallParser : null,
    connections: {
      keepAliveTimeoutMs: options.timeoutKeepAliveSeconds * 1000,
      maxConnections: options.maxConnections,
      maxHeaderBytes: options.maxHeaderBytes,
      maxHeaderCount: options.maxHeaderCount,
    },
    apiKey: options.apiKeys,
    allowedOrigins: options.allowedOrigins,
    hideAdapterPaths: options.hideAdapterPaths,
    promptTokensDetails: options.enablePromptTokensDetails,
    requestIdHeaders: options.enableRequestIdHeaders,
    logRequests: options.logRequests,
    statsIntervalMs: options.logStats ? STATS_INTERVAL_MS : null,
  });
  // Before anything loads a native library: Dawn's warnings (lavapipe's reduced limits, a missing
  // Vulkan loader) go straight to descriptor 2 and would break the JSON log.
  stderrCapture = await captureStderr((line) => app.log.warn({ source: 'stderr' }, line));
  if (!stderrCapture)
    app.log.info('stderr could not be captured: native libraries may print non-JSON lines there');
  for (const notice of options.notices) app.log.info(notice);
  const hugePages = hugePagesNotice();
  if (hugePages) app.log.info(hugePages);
  if (options.gpuMemoryUtilization !== null)
    app.log.info(
      { poolSize: options.poolSize },
      `--gpu-memory-utilization ${options.gpuMemoryUtilization}: the engine's share of its memory; on a GPU whose size nvidia-smi or amdgpu's sysfs reports, the pool (KV cache and adapters) is that fraction of it less the weights; otherwise that fraction of host memory (the onnx and reference engines, a software WebGPU adapter), which a hardware WebGPU adapter refuses: use --pool-size BYTES there`,
    );
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

  if (https && options.tls?.refresh) refreshTlsOnChange(app.server as HttpsServer, options.tls, app.log);
  if (options.uds) {
    await app.listen({ path: options.uds });
    await openSocketToLocalUsers(options.uds);
  } else await app.listen({ host: options.host, port: options.port });
  const { modelDir, adapters } = await resolveModel(options);
  const weights = await weightFiles(modelDir);
  if (weights)
    app.log.info(
      { dir: modelDir, shards: weights.shards, megabytes: mb(weights.bytes) },
      'model weights to load',
    );
  const loadStartedAt = performance.now();
  const stack = await buildServingStack(
    {
      modelDir,
      loraModules: adapters,
      loraDir: options.loraDir,
      loraRoot: options.loraRoot,
      maxLoras: options.maxLoras,
      maxCpuLoras: options.maxCpuLoras,
      maxLoraRank: options.maxLoraRank,
      loraMode: options.loraMode,
      servedModelName: options.servedModelName,
      modelAliases: options.servedModelAliases,
      maxModelLen: options.maxModelLen,
      disableSlidingWindow: options.disableSlidingWindow,
      maxNumSeqs: options.maxNumSeqs,
      maxNumBatchedTokens: options.maxNumBatchedTokens,
      schedulingPolicy: options.schedulingPolicy,
      maxLorasPerBatch: options.maxLorasPerBatch,
      maxWaiting: options.maxQueue ?? undefined,
      sloTtftSeconds: options.sloTtftSeconds,
      maxStepSeconds: options.maxStepSeconds,
      streamStallTimeoutSeconds: options.streamStallTimeoutSeconds,
      engine: options.engine,
      onnxThread: options.onnxThread,
      cachePackedWeights: options.cachePackedWeights,
      logprobsMode: options.logprobsMode,
      dtype: options.dtype,
      quantization: options.quantization,
      poolSize: options.poolSize,
      gpuMemoryUtilization: options.gpuMemoryUtilization,
      chatTemplateFile: options.chatTemplate,
      tokenizerDir: options.tokenizer,
      hfConfigDir: options.hfConfigPath,
      hfOverrides: options.hfOverrides,
      generationConfig: options.generationConfig,
      overrideGenerationConfig: options.overrideGenerationConfig,
      seed: options.seed,
      enablePrefixCaching: options.enablePrefixCaching,
    },
    app.log,
  );
  if (isShuttingDown) {
    await stack.close();
    return;
  }
  try {
    checkBaseModelNames(adapters, stack.modelName);
  } catch (error) {
    await stack.close();
    throw error;
  }
  app.loom.attach(stack);
  const loadSeconds = (performance.now() - loadStartedAt) / 1000;
  app.log.info(
    {
      seconds: Math.round(loadSeconds * 10) / 10,
      ...(weights
        ? { megabytes: mb(weights.bytes), megabytesPerSecond: mb(weights.bytes / loadSeconds) }
        : {}),
    },
    'model loaded',
  );
  const registered = stack.scheduler.adapters.list();
  app.log.info(
    { model: stack.modelName, adapters: registered.length, first: registered.slice(0, 8).map((a) => a.name) },
    'serving',
  );
}

main().catch((error: unknown) => {
  const line = isUserFacing(error)
    ? `loom: ${oneLine(error.message)}`
    : `loom: start-up failed: ${oneLine(String((error as Error)?.message ?? error))}`;
  if (stderrCapture) stderrCapture.writeOriginal(line);
  else console.error(line);
  process.exit(1);
});
