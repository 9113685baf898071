import { AdapterError, type AdapterInfo, emptyRegistryCounters } from '../../memory/adapter-registry.js';
import type { ChatMessage } from '../../model/chat-template.js';
import { tokenCharOffsets } from '../../model/token-offsets.js';
import type { TokenizerInfo } from '../../model/tokenizer-info.js';
import type { EngineStats } from '../../scheduler/llm-engine.js';
import {
  AdmissionError,
  type GenerationDelta,
  type GenerationRequest,
  type GenerationStream,
} from '../../scheduler/request.js';
import type { SchedulingPolicyName } from '../../scheduler/scheduling-policy.js';
import type {
  AdapterAdmin,
  GenerationService,
  ServingStack,
  ServingTokenizer,
} from '../../server/serving-stack.js';

/**
 * A serving stack of fakes for HTTP-level tests that run in milliseconds: a byte tokenizer
 * (id = byte, BOS = 256) and a scheduler that writes letters derived from the adapter name and
 * the prompt, one token per macrotask, so streaming and aborts behave as with a real loop.
 */
export const BOS = 256;

export class ByteTokenizer implements ServingTokenizer {
  readonly vocabSize = 258;
  /** One byte per token: a character is one token or more. */
  readonly longestTokenChars = 1;
  constructor(
    readonly hasChatTemplate = true,
    /** Whether the fake template writes tools and tool calls (a template that does not is refused them). */
    private readonly writesTools = true,
  ) {}

  encode(text: string, addSpecialTokens = true): number[] {
    const bytes = [...Buffer.from(text, 'utf8')];
    return addSpecialTokens ? [BOS, ...bytes] : bytes;
  }

  /** Bytes as UTF-8; BOS is `<s>` unless special tokens are skipped, 257 is `</s>`. */
  decode(ids: readonly number[], skipSpecialTokens = true): string {
    let text = '';
    let bytes: number[] = [];
    for (const id of [...ids, -1]) {
      if (id >= 0 && id < 256) {
        bytes.push(id);
        continue;
      }
      text += Buffer.from(bytes).toString('utf8');
      bytes = [];
      if (id >= 256 && !skipSpecialTokens) text += id === BOS ? '<s>' : '</s>';
    }
    return text;
  }

  /** Token b is byte b; BOS and EOS add no bytes. */
  tokenBytes(): Array<Uint8Array | null> {
    return Array.from({ length: this.vocabSize }, (_, id) => (id < 256 ? Uint8Array.of(id) : null));
  }

  /** Byte b's vocabulary entry is `<0xNN>` (byte fallback's spelling), BOS `<s>`, EOS `</s>`. */
  idsToTokens(ids: readonly number[]): string[] {
    return ids.map((id) =>
      id === BOS ? '<s>' : id === 257 ? '</s>' : `<0x${id.toString(16).toUpperCase().padStart(2, '0')}>`,
    );
  }

  charOffsets(text: string, ids: readonly number[]): Array<[number, number]> | null {
    return tokenCharOffsets(text, ids, this.tokenBytes(), (id) => this.idsToTokens([id])[0]);
  }

  /** What a tokenizer_config.json naming the fake's specials would give. */
  tokenizerInfo(): TokenizerInfo {
    return {
      bos_token: '<s>',
      eos_token: '</s>',
      pad_token: null,
      added_tokens_decoder: { '1': '<s>', '257': '</s>' },
      tokenizer_class: 'CachedFakeTokenizerFast',
    };
  }

  /** The fake template reads content as a string. */
  chatTemplateContentFormat(): 'string' {
    return 'string';
  }

  /** The fake renders its one template: a request's own is the real tokenizer's business. */
  withChatTemplate(): ServingTokenizer {
    throw new Error('the fake tokenizer renders only its own template');
  }

  /** The fake template writes tools and tool calls (as JSON), unless told not to. */
  chatTemplateReads(name: string): boolean {
    return this.writesTools && (name === 'tools' || name === 'tool_calls');
  }

  applyChatTemplate(
    messages: ChatMessage[],
    addGenerationPrompt = true,
    _extra: Readonly<Record<string, unknown>> = {},
    tools: readonly unknown[] | null = null,
  ): string {
    const calls = (m: ChatMessage) => (m.tool_calls ? ` ${JSON.stringify(m.tool_calls)}` : '');
    const turns = messages
      .map((m) => `${m.role}${m.name ? ` (${m.name})` : ''}: ${m.content}${calls(m)}\n`)
      .join('');
    return `<s>${tools ? `tools: ${JSON.stringify(tools)}\n` : ''}${turns}${addGenerationPrompt ? 'assistant:' : ''}`;
  }
}

export function fakeText(adapter: string | null, prompt: readonly number[], length: number): string {
  let h = 2166136261;
  for (const c of `${adapter ?? ''}|${prompt.join(',')}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(97 + (((h >>> (i % 24)) + i) % 26));
  return text;
}

/** The wait for a token: a macrotask, or `delayMs`; an abort ends it at once, as a real step would. */
function nextToken(delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (delayMs === 0 || signal?.aborted) {
      setImmediate(resolve);
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, delayMs);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export class FakeScheduler implements GenerationService {
  readonly submitted: GenerationRequest[] = [];
  /** Requests whose generation is still running. */
  readonly live = new Set<string>();
  refuseWith: AdmissionError | null = null;
  /** Accepted, then ended in the queue with this error before any token (early abort). */
  abortInQueueWith: AdmissionError | null = null;
  /** 0: a token per macrotask; more: a token per this many milliseconds (slow generations). */
  tokenDelayMs = 0;
  isClosed = false;

  submit(request: GenerationRequest): GenerationStream {
    if (this.refuseWith) throw this.refuseWith;
    if (this.isClosed) throw new AdmissionError('closed', 1);
    this.submitted.push(request);
    const { sampling } = request;
    const live = this.live;
    const tokenDelayMs = this.tokenDelayMs;
    let completionTokens = 0;
    const abortInQueueWith = this.abortInQueueWith;
    const stopped = new Set<number>();
    async function* run(): AsyncGenerator<GenerationDelta> {
      if (abortInQueueWith) {
        await new Promise((resolve) => setImmediate(resolve));
        throw abortInQueueWith;
      }
      live.add(request.requestId);
      request.onScheduled?.();
      try {
        const text = fakeText(request.adapter, request.promptTokens, sampling.maxTokens);
        for (let i = 0; i < sampling.maxTokens; i++) {
          await nextToken(tokenDelayMs, request.signal);
          for (let index = 0; index < sampling.n; index++) {
            if (request.signal?.aborted) {
              yield { index, text: '', tokenIds: [], finishReason: 'abort' };
              continue;
            }
            if (stopped.has(index)) continue;
            completionTokens++;
            const tokenId = text.charCodeAt(i);
            // Stops as the real checker makes them (for one-character stop strings, which a fake token
            // completes at once): neither a stop token's text nor a stop string is output.
            if (sampling.stopTokenIds.includes(tokenId)) {
              stopped.add(index);
              yield { index, text: '', tokenIds: [tokenId], finishReason: 'stop', stopReason: tokenId };
              continue;
            }
            const stop = sampling.stop.find((s) => s === text[i]);
            if (stop !== undefined) {
              stopped.add(index);
              yield { index, text: '', tokenIds: [tokenId], finishReason: 'stop', stopReason: stop };
              continue;
            }
            const last = i === sampling.maxTokens - 1;
            yield {
              index,
              text: text[i],
              tokenIds: [tokenId],
              finishReason: last ? 'length' : null,
            };
          }
          if (stopped.size === sampling.n) return;
          if (request.signal?.aborted) return;
        }
      } finally {
        live.delete(request.requestId);
      }
    }
    const deltas = run();
    return {
      promptTokens: request.promptTokens.length,
      cachedPromptTokens: 0,
      get completionTokens() {
        return completionTokens;
      },
      [Symbol.asyncIterator]: () => deltas,
    };
  }

  stats(): EngineStats {
    return {
      numRequests: this.live.size,
      numWaiting: 0,
      numRunning: this.live.size,
      numRunningRequests: this.live.size,
      numWaitingRequests: 0,
      kvBlockSize: 1,
      kvPagesPerBlock: 2,
      requestsByAdapter: {},
      numKvPages: 0,
      numPrefixCachedPages: 0,
      numPrefixQueryTokens: 0,
      numPrefixHitTokens: 0,
      numAdapterPages: 0,
      numFreePages: 15,
      numGeneratedTokens: 0,
      numPreemptions: 0,
      numSteps: 0,
      numSloAborts: 0,
      pageBytes: 32,
      numPages: 16,
      numRegisteredAdapters: this.adapterInfos.length,
      numResidentAdapters: 0,
      numContiguousAdapters: 0,
      numStackedAdapters: 0,
      adapterHostBytes: 0,
      maxLoras: 2,
      adapterCounters: emptyRegistryCounters(),
    };
  }

  health(): null {
    return null;
  }

  /** Two adapters on disk; runtime loads are refused (the real registry is tested on its own). */
  private readonly adapterInfos: AdapterInfo[] = ['a', 'b'].map((id) => ({
    name: `ad-${id}`,
    path: `/adapters/${id}`,
    rank: 4,
    tier: 'disk',
    numPins: 0,
    numRequests: 0,
    isContiguous: false,
  }));

  readonly adapters: AdapterAdmin = {
    resolve: async (name) => this.adapterInfos.some((a) => a.name === name),
    list: () => this.adapterInfos,
    load: async (name) => {
      throw new AdapterError(`fake stack cannot load "${name}"`, 'invalid');
    },
    unload: (name) => {
      throw new AdapterError(`adapter "${name}" is not loaded`, 'not_found');
    },
  };

  adaptersInUse(): { running: string[]; waiting: string[] } {
    return { running: [], waiting: [] };
  }

  /** Resets asked for (reset_prefix_cache); the fake caches nothing, so none are dropped. */
  prefixCacheResets = 0;

  async resetPrefixCache(): Promise<number | null> {
    this.prefixCacheResets++;
    return 0;
  }

  async close(): Promise<void> {
    this.isClosed = true;
  }
}

export interface FakeStackOptions {
  hasChatTemplate?: boolean;
  /** Whether the chat template writes tools and tool calls (default true). */
  templateWritesTools?: boolean;
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxWaiting?: number;
  schedulingPolicy?: SchedulingPolicyName;
}

export function fakeStack(options: FakeStackOptions = {}): ServingStack & { scheduler: FakeScheduler } {
  const scheduler = new FakeScheduler();
  return {
    modelName: 'tiny-base',
    modelDir: '/models/tiny-base',
    maxModelLen: options.maxModelLen ?? 64,
    maxNumSeqs: options.maxNumSeqs ?? 8,
    maxWaiting: options.maxWaiting ?? 1024,
    schedulingPolicy: options.schedulingPolicy ?? 'slora',
    tokenizer: new ByteTokenizer(options.hasChatTemplate ?? true, options.templateWritesTools ?? true),
    eosTokenIds: [257],
    scheduler,
    loraRoot: null,
    createdAt: 1_700_000_000,
    async close() {
      await scheduler.close();
    },
  };
}

/** The `data:` payloads of a server-sent event body, in order. */
export function sseEvents(body: string): string[] {
  return body
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      if (!frame.startsWith('data: ')) throw new Error(`not an SSE data frame: ${frame}`);
      return frame.slice('data: '.length);
    });
}
