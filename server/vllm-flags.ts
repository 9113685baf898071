import {
  DTYPE_CHOICES,
  type DtypeChoice,
  QUANTIZATION_CHOICES,
  type QuantizationChoice,
} from '../kernels/engine-factory.js';
import { CliError } from './cli-error.js';

/**
 * vLLM's command-line spellings Loom maps onto its own (dtype names, Python's log levels, short
 * forms) or accepts and ignores, saying why: what lets a vLLM command line run unchanged.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * vLLM flags that change nothing in Loom, so a vLLM command line runs as it is: each says why in
 * one start-up log line. `accepts` limits the values to those that truly change nothing.
 */
interface IgnoredFlag {
  why: string;
  takesValue: boolean;
  accepts?: (value: string) => boolean;
  expected?: string;
}

export const IGNORED_FLAGS: Record<string, IgnoredFlag> = {
  '--trust-remote-code': { why: 'Loom runs no code from model repositories', takesValue: false },
  '--enforce-eager': { why: 'Loom captures no CUDA graphs', takesValue: false },
  '--disable-custom-all-reduce': { why: 'Loom runs on one device', takesValue: false },
  '--disable-frontend-multiprocessing': { why: 'Loom serves from one process', takesValue: false },
  '--tensor-parallel-size': {
    why: 'Loom runs on one device',
    takesValue: true,
    accepts: (v) => v.trim() === '1',
    expected: '1 (Loom runs on one device; tensor parallelism is not supported)',
  },
  '--pipeline-parallel-size': {
    why: 'Loom runs on one device',
    takesValue: true,
    accepts: (v) => v.trim() === '1',
    expected: '1 (Loom runs on one device; pipeline parallelism is not supported)',
  },
  '--load-format': {
    why: 'Loom reads safetensors, the only format it loads',
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'safetensors',
    expected: 'auto or safetensors',
  },
  '--tokenizer-mode': {
    why: "Loom always uses the model's tokenizer.json",
    takesValue: true,
    accepts: (v) => v === 'auto',
    expected: 'auto',
  },
  '--max-log-len': { why: 'Loom never logs prompt text', takesValue: true },
  '--enable-chunked-prefill': {
    why: 'Loom always cuts long prompts into chunks within --max-num-batched-tokens',
    takesValue: false,
  },
  '--disable-fastapi-docs': { why: 'Loom serves no API documentation pages', takesValue: false },
  '--lora-dtype': {
    why: "Loom computes LoRA in f32 from adapters kept in their files' dtype",
    takesValue: true,
    accepts: (v) => v === 'auto',
    expected: "auto (Loom computes LoRA in f32 from adapters kept in their files' dtype)",
  },
  '--enable-server-load-tracking': {
    why: 'Loom always counts the requests in flight that GET /load reports',
    takesValue: false,
  },
  '--fully-sharded-loras': { why: 'Loom runs on one device', takesValue: false },
  '--max-seq-len-to-capture': { why: 'Loom captures no CUDA graphs', takesValue: true },
  '--swap-space': { why: 'Loom preempts by recomputing, never by swapping to host memory', takesValue: true },
  '--uvicorn-log-level': { why: "Loom's HTTP server logs at --log-level", takesValue: true },
  '--kv-cache-dtype': {
    why: "Loom keeps the KV cache in its engine's own dtype",
    takesValue: true,
    accepts: (v) => v === 'auto',
    expected: 'auto (Loom has no fp8 KV cache)',
  },
  '--expand-tools-even-if-tool-choice-none': {
    why: 'Loom writes the tools into the prompt under tool_choice "none" already (vLLM\'s default since it deprecated this flag)',
    takesValue: false,
  },
  '--root-path': {
    why: "Loom's routes are the same behind a proxy's path prefix, and it serves no documentation pages whose links would need it",
    takesValue: true,
  },
  '--download-dir': { why: 'Loom downloads nothing: --model names a local folder', takesValue: true },
  '--revision': {
    why: 'Loom downloads nothing: --model names a local folder, read as it is',
    takesValue: true,
  },
  '--tokenizer-revision': {
    why: 'Loom downloads nothing: the tokenizer is read from a local folder as it is',
    takesValue: true,
  },
  '--code-revision': { why: 'Loom runs no code from model repositories', takesValue: true },
  '--max-parallel-loading-workers': { why: 'Loom reads the weight files in its own order', takesValue: true },
  '--num-scheduler-steps': {
    why: 'Loom schedules every step',
    takesValue: true,
    accepts: (v) => v.trim() === '1',
    expected: '1 (Loom schedules every step; multi-step scheduling is not supported)',
  },
  '--cpu-offload-gb': {
    why: "Loom keeps the weights in its engine's memory",
    takesValue: true,
    accepts: (v) => Number(v) === 0,
    expected: "0 (Loom keeps the weights in its engine's memory; offloading is not supported)",
  },
  '--preemption-mode': {
    why: 'Loom preempts by recomputing',
    takesValue: true,
    accepts: (v) => v === 'recompute',
    expected: 'recompute (Loom preempts by recomputing, never by swapping)',
  },
  '--async-scheduling': {
    why: "it changes when vLLM schedules, not what a request produces; Loom's step loop is its own",
    takesValue: false,
  },
  '--compilation-config': { why: 'Loom compiles no PyTorch graphs', takesValue: true },
  '--api-server-count': {
    why: 'Loom serves from one process',
    takesValue: true,
    accepts: (v) => v.trim() === '1',
    expected: '1 (Loom serves from one process)',
  },
  '--data-parallel-size': {
    why: 'Loom runs on one device',
    takesValue: true,
    accepts: (v) => v.trim() === '1',
    expected: '1 (Loom runs on one device; data parallelism is not supported)',
  },
  '--block-size': {
    why: "Loom sizes its KV pages from its unified page pool, whatever vLLM's block size would be",
    takesValue: true,
    accepts: (v) => /^[1-9][0-9]*$/.test(v.trim()),
    expected: 'a positive integer',
  },
  '--long-prefill-token-threshold': {
    why: 'Loom cuts prefills into chunks within --max-num-batched-tokens',
    takesValue: true,
  },
  '--max-num-partial-prefills': {
    why: 'Loom cuts prefills into chunks within --max-num-batched-tokens',
    takesValue: true,
  },
  '--max-long-partial-prefills': {
    why: 'Loom cuts prefills into chunks within --max-num-batched-tokens',
    takesValue: true,
  },
  '--enable-log-outputs': { why: 'Loom never logs generated text', takesValue: false },
  '--log-error-stack': { why: 'Loom logs every unexpected server error with its stack', takesValue: false },
  '--limit-mm-per-prompt': {
    why: 'Loom takes text only; image, audio and video parts are refused by name',
    takesValue: true,
  },
  '--guided-decoding-backend': {
    why: "Loom's structured output has its own grammar engine",
    takesValue: true,
  },
  '--distributed-executor-backend': {
    why: 'Loom serves from one process on one device',
    takesValue: true,
    accepts: (v) => v === 'mp' || v === 'uni',
    expected: 'mp or uni (Loom serves from one process; ray is not supported)',
  },
  '--enable-expert-parallel': {
    why: 'Loom serves dense Llama-family models, which have no experts',
    takesValue: false,
  },
  '--model-impl': {
    why: "Loom runs its own Llama implementation, which computes what transformers' does",
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'vllm' || v === 'transformers',
    expected: 'auto, vllm or transformers',
  },
  '--allowed-local-media-path': {
    why: 'Loom takes text only: image, audio and video parts are refused by name, files included',
    takesValue: true,
  },
  '--mm-processor-kwargs': { why: 'Loom takes text only; it runs no multimodal processor', takesValue: true },
  '--disable-chunked-mm-input': {
    why: 'Loom takes text only; it has no multimodal inputs to chunk',
    takesValue: false,
  },
  '--disable-cascade-attn': {
    why: "Loom has no cascade attention kernel; vLLM's flag changes a kernel, not what a request produces",
    takesValue: false,
  },
  '--enable-offline-docs': { why: 'Loom serves no API documentation pages', takesValue: false },
  '--tokenizer-pool-size': {
    why: 'Loom tokenizes on its server thread (vLLM removed its tokenizer pool)',
    takesValue: true,
    accepts: (v) => Number(v) === 0,
    expected: '0 (Loom has no tokenizer pool)',
  },
  '--show-hidden-metrics-for-version': {
    why: "Loom's /metrics hides no deprecated series: it shows every series it has",
    takesValue: true,
  },
  '--task': {
    why: 'Loom serves text generation',
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'generate',
    expected: 'auto or generate (Loom serves text generation, not pooling tasks)',
  },
  '--runner': {
    why: 'Loom serves text generation',
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'generate',
    expected: 'auto or generate (Loom serves text generation, not pooling models)',
  },
  '--convert': {
    why: 'Loom serves the model as the generative model it is',
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'none',
    expected: 'auto or none (Loom converts no model into a pooling model)',
  },
  '--config-format': {
    why: "Loom reads the model's config.json",
    takesValue: true,
    accepts: (v) => v === 'auto' || v === 'hf',
    expected: "auto or hf (Loom reads the Hugging Face config.json; Mistral's params.json is not read)",
  },
  '--hf-token': { why: 'Loom downloads nothing: --model names a local folder', takesValue: true },
  '--allowed-media-domains': { why: 'Loom takes text only; it fetches no media', takesValue: true },
  '--default-mm-loras': {
    why: 'Loom takes text only: no request brings the modality these adapters are for',
    takesValue: true,
  },
  '--logits-processor-pattern': {
    why: 'Loom loads no logits processors by name, so none can match the pattern',
    takesValue: true,
  },
  '--aggregate-engine-logging': { why: 'Loom runs one engine, which logs as one', takesValue: false },
  '--calculate-kv-scales': {
    why: 'KV scales are for an fp8 KV cache, which Loom does not have (--kv-cache-dtype auto only)',
    takesValue: false,
  },
  '--prefix-caching-hash-algo': {
    why: 'Loom keys cached blocks by a SHA-256 chain whichever is named (the choice only moves the odds of a collision)',
    takesValue: true,
    accepts: (v) =>
      ['sha256', 'sha256_cbor', 'sha256_cbor_64bit', 'builtin', 'xxhash', 'xxhash_cbor'].includes(v),
    expected: 'sha256, sha256_cbor, sha256_cbor_64bit, builtin, xxhash or xxhash_cbor',
  },
  '--cuda-graph-sizes': { why: 'Loom captures no CUDA graphs', takesValue: true },
  '--data-parallel-rank': {
    why: 'Loom runs on one device',
    takesValue: true,
    accepts: (v) => v.trim() === '0',
    expected: '0 (Loom runs on one device; data parallelism is not supported)',
  },
  '--ray-workers-use-nsight': { why: 'Loom runs no Ray workers', takesValue: false },
  '--enable-eplb': {
    why: 'Loom serves dense Llama-family models, which have no experts to balance',
    takesValue: false,
  },
  '--use-v2-block-manager': {
    why: "vLLM's block manager flag changes nothing since v0.6 (Loom pages its own KV)",
    takesValue: false,
  },
};

/**
 * vLLM flags whose work Loom cannot do, refused by name with the reason (and what to use instead)
 * rather than as an unknown flag: a command line that needs one must not start without it.
 */
export const UNSUPPORTED_FLAGS: Record<string, string> = {
  '--middleware':
    'vLLM imports Python ASGI middleware by name; Loom runs no Python: put what it did in a reverse proxy in front of Loom',
  '--tool-parser-plugin':
    'a Python tool-call parser; Loom runs no Python: its own formats are chosen with --tool-call-parser (see --help)',
  '--reasoning-parser-plugin':
    'a Python reasoning parser; Loom runs no Python: its own parsers are chosen with --reasoning-parser (see --help)',
  '--logits-processors': 'Python logits processor classes; Loom runs no Python',
  '--enable-sleep-mode':
    "vLLM's sleep mode (/sleep, /wake_up) gives the device's weights and KV cache back between uses; Loom's engines keep their memory for the life of the process",
  '--speculative-config': 'Loom has no speculative decoding',
  '--kv-transfer-config': 'Loom has no disaggregated prefill: it moves no KV cache between instances',
  '--otlp-traces-endpoint':
    'Loom makes no network call of its own, OpenTelemetry exports included: /metrics is scraped',
  '--collect-detailed-traces': 'Loom exports no OpenTelemetry traces (it makes no network call of its own)',
  '--tool-server':
    'Loom calls no tool servers (it makes no network call of its own): clients run their tools',
  '--enable-prompt-embeds': 'Loom takes prompts as text or token ids, not embeddings',
  '--prompt-adapters': 'Loom serves LoRA adapters, not prompt-tuning adapters (vLLM removed them too)',
  '--skip-tokenizer-init': "Loom's API needs the tokenizer: prompts and answers are text",
  '--headless':
    'Loom serves its API from the process that runs its engine; there is no engine without a server',
  '--long-lora-scaling-factors': 'Loom has no long-context LoRA rotary scaling (vLLM removed it too)',
  '--enable-lora-bias':
    "Loom applies B·A only: adapters whose lora_B carries a bias (PEFT's lora_bias) are refused when they load",
  '--lora-extra-vocab-size':
    "Loom's adapters add no tokens: an adapter that brings its own embeddings is refused when it loads",
  '--enable-mfu-metrics': 'Loom has no model-FLOPs-utilization metrics',
  '--kv-events-config': 'Loom publishes no KV cache events (it makes no network call of its own)',
  '--pooler-config': 'Loom serves text generation, not pooling models',
  '--override-pooler-config': 'Loom serves text generation, not pooling models',
  '--scheduler-cls': 'a Python scheduler class; Loom runs no Python (its own policies: --scheduling-policy)',
  '--worker-cls': 'a Python worker class; Loom runs no Python',
  '--worker-extension-cls':
    'a Python worker extension (RL frameworks use one to update weights); Loom runs no Python: adapters are updated with /v1/load_lora_adapter and load_inplace',
  '--num-gpu-blocks-override': 'Loom sizes its unified pool in bytes, not KV blocks: use --pool-size',
};

/** vLLM's short forms of flags. */
export const ALIASES: Record<string, string> = {
  '-tp': '--tensor-parallel-size',
  '-pp': '--pipeline-parallel-size',
  '-q': '--quantization',
};

export function ignoredFlagList(): string {
  return Object.keys(IGNORED_FLAGS).join(', ');
}

/**
 * The start-up line for an ignored vLLM flag given `value` (null for a switch), or a CliError when
 * the value is one Loom cannot honour by ignoring it (a tensor-parallel size above 1).
 */
export function ignoredFlagNotice(flag: string, value: string | null): string {
  const ignored = IGNORED_FLAGS[flag];
  if (value !== null && ignored.accepts && !ignored.accepts(value))
    throw new CliError(`${flag}: "${value}" is not supported; expected ${ignored.expected}`);
  return `${flag}${value === null ? '' : ` ${value}`}: ignored, ${ignored.why}`;
}

/** vLLM's dtype spellings onto the weight storage Loom's engines have. */
const DTYPE_SPELLINGS: Record<string, DtypeChoice> = {
  auto: 'auto',
  float16: 'f16',
  half: 'f16',
  f16: 'f16',
  float32: 'f32',
  float: 'f32',
  f32: 'f32',
  bfloat16: 'bf16',
  bf16: 'bf16',
};

export function parseDtype(value: string, flag = '--dtype'): DtypeChoice {
  const dtype = DTYPE_SPELLINGS[value];
  if (dtype && (DTYPE_CHOICES as readonly string[]).includes(dtype)) return dtype;
  throw new CliError(`${flag}: "${value}" is not one of ${Object.keys(DTYPE_SPELLINGS).join(', ')}`);
}

/**
 * --quantization: Loom's own weight-only int8/int4, made at load from an f32/f16/bf16 checkpoint.
 * vLLM's methods that read a pre-quantized checkpoint (awq, gptq, fp8, bitsandbytes, …) are
 * refused by name: Loom loads no such tensors.
 */
export function parseQuantization(value: string, flag = '--quantization'): QuantizationChoice | null {
  if (value === 'none' || value === 'None') return null;
  if ((QUANTIZATION_CHOICES as readonly string[]).includes(value)) return value as QuantizationChoice;
  throw new CliError(
    `${flag}: "${value}" is not supported; Loom quantizes the base weights itself at load: ${QUANTIZATION_CHOICES.join(' or ')} (onnx engine), or none`,
  );
}

/** pino's levels, and Python's `warning`/`critical` spellings vLLM users type. */
export function parseLogLevel(value: string, flag: string): LogLevel {
  const level = { warning: 'warn', critical: 'fatal' }[value.toLowerCase()] ?? value.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new CliError(`${flag}: "${value}" is not one of ${LOG_LEVELS.join(', ')}`);
  return level as LogLevel;
}
