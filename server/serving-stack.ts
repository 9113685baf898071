import type { EngineFailure } from '../kernels/engine.js';
import type { AdapterInfo } from '../memory/adapter-registry.js';
import type { ChatMessage, ChatTemplate } from '../model/chat-template.js';
import {
  type GenerationConfigSource,
  loadSamplingDefaults,
  type SamplingDefaults,
} from '../model/generation-defaults.js';
import type { TokenizerInfo } from '../model/tokenizer-info.js';
import {
  DEFAULT_MAX_WAITING,
  type EngineStats,
  LlmEngine,
  type LlmEngineOptions,
  type ProgressLog,
} from '../scheduler/llm-engine.js';
import type { GenerationRequest, GenerationStream } from '../scheduler/request.js';
import type { SchedulerEventSink } from '../scheduler/scheduler-events.js';
import { DEFAULT_SCHEDULING_POLICY, type SchedulingPolicyName } from '../scheduler/scheduling-policy.js';

export { DEFAULT_MAX_WAITING, type ProgressLog } from '../scheduler/llm-engine.js';

/** What the HTTP layer needs from the tokenizer: text to ids and back, chat rendering. */
export interface ServingTokenizer {
  readonly vocabSize: number;
  /** Characters of the longest token's text: a prompt longer than maxModelLen × this cannot fit. */
  readonly longestTokenChars: number;
  readonly hasChatTemplate: boolean;
  /**
   * Whether the chat template names `name` anywhere (model/chat-template.ts ChatTemplate.reads):
   * the one a rendering with tools uses when `withTools` (a model's "tool_use" template).
   */
  chatTemplateReads(name: string, withTools?: boolean): boolean;
  encode(text: string, addSpecialTokens?: boolean): number[];
  /** Text of `ids` as HF's `decode` gives it (special tokens skipped by default). */
  decode(ids: readonly number[], skipSpecialTokens?: boolean): string;
  /** The bytes each token adds to the text, null for special tokens (structured output). */
  tokenBytes(): ReadonlyArray<Uint8Array | null>;
  /** Each id's vocabulary entry (HF's convert_ids_to_tokens). */
  idsToTokens(ids: readonly number[]): string[];
  /** Each token's span of the text it was encoded from, in characters; null where none can be found. */
  charOffsets(text: string, ids: readonly number[]): Array<[number, number]> | null;
  /** The tokenizer's configuration, as vLLM's GET /tokenizer_info gives it (model/tokenizer-info.ts). */
  tokenizerInfo(): TokenizerInfo;
  /** The content format vLLM's "auto" picks for the chat template (the tool_use one with tools). */
  chatTemplateContentFormat(withTools?: boolean): 'string' | 'openai';
  /** This tokenizer with `template` in place of the model's chat template (a request's own). */
  withChatTemplate(template: ChatTemplate): ServingTokenizer;
  applyChatTemplate(
    messages: ChatMessage[],
    addGenerationPrompt?: boolean,
    extra?: Readonly<Record<string, unknown>>,
    tools?: readonly unknown[] | null,
  ): string;
}

/** Adapter administration as the HTTP layer sees it (the registry behind it owns adapters). */
export interface AdapterAdmin {
  /** Whether `name` is a servable adapter (registering it now when it is found in --lora-dir). */
  resolve(name: string): Promise<boolean>;
  list(): AdapterInfo[];
  load(name: string, path: string, inPlace: boolean): Promise<void>;
  unload(name: string): void;
}

/** The generation service (scheduler/llm-engine.ts) as the HTTP layer sees it. */
export interface GenerationService {
  submit(request: GenerationRequest): GenerationStream;
  stats(): EngineStats;
  /** Why the engine can run no more steps (device lost), or null. */
  health(): EngineFailure | null;
  readonly adapters: AdapterAdmin;
  /** Optional: every scheduler event (request-level metrics are read from them); returns the unsubscribe. */
  subscribe?(listener: SchedulerEventSink): () => void;
  /** Which adapters the queues need now: running, and waiting in queue order. */
  adaptersInUse(): { running: string[]; waiting: string[] };
  /** vLLM's reset_prefix_cache: resolves, between steps, to the blocks dropped (null: no prefix caching). */
  resetPrefixCache(): Promise<number | null>;
  close(): Promise<void>;
}

/**
 * Everything a running server serves: built once at start-up by buildServingStack, or by a
 * test from fakes. Routes reach pages, engines and adapters only through `scheduler`.
 */
export interface ServingStack {
  /** The base model's id in the API (--served-model-name's first name, or the directory's name). */
  readonly modelName: string;
  /** --served-model-name's other names: requests may name the base model so too (answers say modelName). */
  readonly modelAliases?: readonly string[];
  readonly modelDir: string;
  readonly maxModelLen: number;
  readonly maxNumSeqs: number;
  /** Waiting sequences past which the scheduler refuses with 503: a request with more choices can never fit. */
  readonly maxWaiting: number;
  /** --scheduling-policy: only `priority` takes requests' priority. */
  readonly schedulingPolicy: SchedulingPolicyName;
  readonly tokenizer: ServingTokenizer;
  /** The model's end-of-sequence tokens (generation_config.json's, else config.json's): beam search ends beams on them. */
  readonly eosTokenIds: readonly number[];
  /** config.json's vocab_size: the width of the model's logits rows (at least the tokenizer's ids); absent: the tokenizer's. */
  readonly modelVocabSize?: number;
  /** Sampling defaults for fields a request leaves out (--generation-config); none: the API's own. */
  readonly samplingDefaults?: SamplingDefaults;
  /** The generation service. */
  readonly scheduler: GenerationService;
  /** --lora-root: the folder runtime loads may read from; null refuses runtime loading. */
  readonly loraRoot: string | null;
  /** Unix seconds the stack came up: the model cards' `created`. */
  readonly createdAt: number;
  close(): Promise<void>;
}

export interface StackOptions extends LlmEngineOptions {
  loraRoot?: string | null;
  /** --served-model-name's names after the first. */
  modelAliases?: readonly string[];
  /** --generation-config (default auto: the model's generation_config.json). */
  generationConfig?: GenerationConfigSource;
  /** --override-generation-config, checked by the CLI. */
  overrideGenerationConfig?: Record<string, unknown>;
}

export async function buildServingStack(options: StackOptions, log: ProgressLog): Promise<ServingStack> {
  // Read before the model: a bad generation_config.json fails start-up at once.
  const samplingDefaults = await loadSamplingDefaults(
    options.modelDir,
    options.generationConfig,
    options.overrideGenerationConfig,
  );
  if (Object.keys(samplingDefaults).length > 0)
    log.info(
      { samplingDefaults, generationConfig: options.generationConfig ?? 'auto' },
      "sampling defaults from the model's generation config (--generation-config vllm: none)",
    );
  const engine = await LlmEngine.create({ ...options, runtimeAdapterLoads: Boolean(options.loraRoot) }, log);
  return {
    modelName: options.servedModelName ?? engine.model.name,
    modelAliases: options.modelAliases ?? [],
    modelDir: engine.model.dir,
    maxModelLen: engine.maxModelLen,
    maxNumSeqs: options.maxNumSeqs,
    maxWaiting: options.maxWaiting ?? DEFAULT_MAX_WAITING,
    schedulingPolicy: options.schedulingPolicy ?? DEFAULT_SCHEDULING_POLICY,
    tokenizer: engine.model.tokenizer,
    eosTokenIds: engine.model.config.eosTokenIds,
    modelVocabSize: engine.model.config.vocabSize,
    samplingDefaults,
    scheduler: engine,
    loraRoot: options.loraRoot ?? null,
    createdAt: Math.floor(Date.now() / 1000),
    close: () => engine.close(),
  };
}

/** Whether `name` is one of the base model's names (--served-model-name takes several, as vLLM). */
export function namesBaseModel(stack: ServingStack, name: string): boolean {
  return name === stack.modelName || (stack.modelAliases?.includes(name) ?? false);
}

/** The `model` an answer names: the base model's first name for any of its names, else the adapter's. */
export function answeredModel(stack: ServingStack, name: string): string {
  return namesBaseModel(stack, name) ? stack.modelName : name;
}
