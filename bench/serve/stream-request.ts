import type { BenchRequest } from './random-dataset.js';
import { SseParser } from './sse.js';

export type Endpoint = '/v1/completions' | '/v1/chat/completions';
export const ENDPOINTS: readonly Endpoint[] = ['/v1/completions', '/v1/chat/completions'];

/** What one request measured, in seconds; the fields `vllm bench serve` keeps per request. */
export interface RequestOutcome {
  index: number;
  model: string;
  success: boolean;
  /** Empty when it succeeded. */
  error: string;
  promptTokens: number;
  outputTokens: number;
  /** Time to the first streamed token. */
  ttft: number;
  /** Gaps between consecutive streamed chunks that carried text. */
  itl: number[];
  /** End-to-end: request sent → stream ended. */
  latency: number;
  /** When it was sent, seconds after the benchmark's start. */
  startOffset: number;
  generatedText: string;
}

export interface StreamOptions {
  baseUrl: string;
  endpoint: Endpoint;
  /** Send the prompt as token ids (exact length) or as text. */
  promptFormat: 'ids' | 'text';
  ignoreEos: boolean;
  /** Milliseconds after which the request is abandoned and counted as failed. */
  timeoutMs: number;
  /** performance.now() at the benchmark's start. */
  benchStart: number;
}

function requestBody(request: BenchRequest, options: StreamOptions): Record<string, unknown> {
  const common = {
    model: request.model,
    max_tokens: request.outputLen,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    ...(options.ignoreEos ? { ignore_eos: true } : {}),
  };
  if (options.endpoint === '/v1/chat/completions')
    return { ...common, messages: [{ role: 'user', content: request.promptText }] };
  return { ...common, prompt: options.promptFormat === 'ids' ? request.promptIds : request.promptText };
}

interface StreamChunk {
  choices?: { text?: string; delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string };
}

/**
 * Sends one streaming request and times it the way vLLM's benchmark does: TTFT at the first
 * chunk that carries text, one inter-token gap per later such chunk, token counts from the
 * final usage chunk (`stream_options.include_usage`), else one token per text chunk.
 */
export async function streamRequest(request: BenchRequest, options: StreamOptions): Promise<RequestOutcome> {
  const started = performance.now();
  const outcome: RequestOutcome = {
    index: request.index,
    model: request.model,
    success: false,
    error: '',
    promptTokens: request.promptIds.length,
    outputTokens: 0,
    ttft: 0,
    itl: [],
    latency: 0,
    startOffset: (started - options.benchStart) / 1000,
    generatedText: '',
  };
  let numTextChunks = 0;
  let usageTokens: number | null = null;
  let lastChunkAt = 0;
  try {
    const response = await fetch(`${options.baseUrl}${options.endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(requestBody(request, options)),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    if (!response.ok || !response.body) {
      const text = await response.text();
      throw new Error(`HTTP ${response.status}: ${errorMessage(text)}`);
    }
    const parser = new SseParser();
    const handle = (data: string): boolean => {
      if (data === '[DONE]') return true;
      const chunk = JSON.parse(data) as StreamChunk;
      if (chunk.error) throw new Error(chunk.error.message ?? 'error event in the stream');
      const choice = chunk.choices?.[0];
      const text = choice?.text ?? choice?.delta?.content ?? '';
      if (text !== '') {
        const now = performance.now();
        if (numTextChunks === 0) outcome.ttft = (now - started) / 1000;
        else outcome.itl.push((now - lastChunkAt) / 1000);
        lastChunkAt = now;
        numTextChunks++;
        outcome.generatedText += text;
      }
      if (chunk.usage) {
        if (typeof chunk.usage.completion_tokens === 'number') usageTokens = chunk.usage.completion_tokens;
        if (typeof chunk.usage.prompt_tokens === 'number') outcome.promptTokens = chunk.usage.prompt_tokens;
      }
      return false;
    };
    let isDone = false;
    for await (const bytes of response.body) {
      for (const data of parser.push(bytes)) isDone ||= handle(data);
    }
    for (const data of parser.end()) isDone ||= handle(data);
    if (!isDone) throw new Error('the stream ended without [DONE]');
    if (numTextChunks === 0) throw new Error('the stream carried no tokens');
    outcome.outputTokens = usageTokens ?? numTextChunks;
    outcome.success = true;
  } catch (error) {
    outcome.error = error instanceof Error ? error.message : String(error);
  }
  outcome.latency = (performance.now() - started) / 1000;
  return outcome;
}

/** The message of an OpenAI error body, or the body itself cut short. */
function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string }; message?: string };
    return parsed.error?.message ?? parsed.message ?? body.slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}
