import type { TokenLogprobs } from '../kernels/logprobs.js';
import { invalidRequest } from './api-error.js';
import type { ServingTokenizer } from './serving-stack.js';

/** vLLM clamps −Infinity (a masked token) to this, since JSON has no infinity. */
const LOWEST_LOGPROB = -9999;

/**
 * What a request asks: top tokens per sampled token (null: no log-probabilities), and per prompt
 * token (vLLM's prompt_logprobs, or echo with logprobs; null: the prompt is not scored).
 */
export interface LogprobsAsked {
  numTop: number | null;
  numTopPrompt: number | null;
}

/** `numTop` is past --max-logprobs (`maxLogprobs`; -1: no cap, as in vLLM). */
function pastMaxLogprobs(numTop: number, maxLogprobs: number): boolean {
  return maxLogprobs !== -1 && numTop > maxLogprobs;
}

/**
 * vLLM's `prompt_logprobs`, checked as vLLM checks it: -1 means the whole vocabulary (past any
 * --max-logprobs but -1), and a stream carries none but for 0.
 */
export function checkPromptLogprobs(
  value: number,
  stream: boolean,
  vocabSize: number,
  maxLogprobs: number,
): number {
  const param = 'prompt_logprobs';
  if (value < -1) throw invalidRequest('`prompt_logprobs` must be a positive value or -1.', param);
  if (stream && value !== 0)
    throw invalidRequest('`prompt_logprobs` are not available when `stream=True`.', param);
  const numTop = value === -1 ? vocabSize : value;
  if (pastMaxLogprobs(numTop, maxLogprobs))
    throw invalidRequest(
      `Requested prompt logprobs of ${numTop}, which is greater than max allowed: ${maxLogprobs}.`,
      param,
    );
  return numTop;
}

/** One token of a prompt position as vLLM's prompt_logprobs lists it (its Logprob). */
export interface PromptLogprobEntry {
  logprob: number;
  rank: number;
  decoded_token: string;
}

/**
 * vLLM's `prompt_logprobs`: one entry per prompt token, null for the first (nothing comes before
 * it); each maps token ids to their Logprob: the prompt token itself (its rank among the
 * vocabulary) and the position's top tokens (ranks 1..k). JSON keys are the ids as strings; a
 * JavaScript object lists them in id order, where vLLM lists the prompt token first.
 */
export type PromptLogprobs = Array<Record<string, PromptLogprobEntry> | null>;

/** The scored prompt tokens (1.., as the engine returned them) in vLLM's prompt_logprobs shape. */
export function promptLogprobsJson(
  tokenizer: ServingTokenizer,
  scored: readonly TokenLogprobs[],
): PromptLogprobs {
  const decoded = (id: number) => tokenizer.decode([id], false);
  return [
    null,
    ...scored.map((score) => {
      const entries: Record<string, PromptLogprobEntry> = {
        [score.tokenId]: {
          logprob: clamped(score.logprob),
          rank: score.rank,
          decoded_token: decoded(score.tokenId),
        },
      };
      // A top token that is the prompt token keeps vLLM's later write: its place in the top list.
      score.topIds.forEach((id, r) => {
        entries[id] = { logprob: clamped(score.topLogprobs[r]), rank: r + 1, decoded_token: decoded(id) };
      });
      return entries;
    }),
  ];
}

/** The top-k count a client asked for, within --max-logprobs, or a 400 naming `param`. */
export function checkNumTop(value: number, param: string, maxLogprobs: number): number {
  if (pastMaxLogprobs(value, maxLogprobs))
    throw invalidRequest(
      `Requested ${param} of ${value}, which is greater than max allowed: ${maxLogprobs}.`,
      param,
    );
  return value;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ChatLogprobs {
  content: Array<ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] }>;
}

function clamped(logprob: number): number {
  return Math.max(logprob, LOWEST_LOGPROB);
}

/**
 * One choice's log-probabilities in the OpenAI shapes, as vLLM writes them: each token as its own
 * decoded text (special tokens written out), −Infinity as −9999. It is called once for a whole
 * choice or once per streamed delta with the same result: completions' `text_offset` runs on
 * over the calls (the offset of each token's text in the choice's tokens joined).
 */
export class ChoiceLogprobs {
  private textOffset = 0;

  constructor(
    private readonly tokenizer: ServingTokenizer,
    private readonly numTop: number,
    /** vLLM's return_tokens_as_token_ids: each token written "token_id:<id>", not decoded. */
    private readonly tokensAsIds = false,
  ) {}

  /**
   * /v1/completions' `logprobs`: a null entry (echo's first prompt token) has no logprob;
   * `top_logprobs` maps the top tokens and the scored one to their logprobs (vLLM's dict).
   */
  completion(tokenIds: readonly number[], scores: ReadonlyArray<TokenLogprobs | null>): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    tokenIds.forEach((id, i) => {
      const token = this.text(id);
      const score = scores[i];
      out.tokens.push(token);
      out.text_offset.push(this.textOffset);
      this.textOffset += token.length;
      if (!score) {
        out.token_logprobs.push(null);
        out.top_logprobs.push(null);
        return;
      }
      out.token_logprobs.push(clamped(score.logprob));
      // vLLM's rule: the first numTop + 1 distinct ids of [scored token, top tokens…], keyed by
      // text. A prompt row may list more top tokens (prompt_logprobs) than logprobs asks for.
      const top: Record<string, number> = { [token]: clamped(score.logprob) };
      let listed = 1;
      score.topIds.forEach((topId, r) => {
        if (topId === id || listed > this.numTop) return;
        top[this.text(topId)] = clamped(score.topLogprobs[r]);
        listed++;
      });
      out.top_logprobs.push(top);
    });
    return out;
  }

  /** /v1/chat/completions' `logprobs`: one entry per token, with its `top_logprobs` most likely tokens. */
  chat(tokenIds: readonly number[], scores: ReadonlyArray<TokenLogprobs>): ChatLogprobs {
    return {
      content: tokenIds.map((id, i) => {
        const score = scores[i];
        return {
          ...this.entry(id, score.logprob),
          top_logprobs: Array.from(score.topIds.subarray(0, this.numTop), (topId, r) =>
            this.entry(topId, score.topLogprobs[r]),
          ),
        };
      }),
    };
  }

  private entry(id: number, logprob: number): ChatTokenLogprob {
    const token = this.text(id);
    return { token, logprob: clamped(logprob), bytes: [...Buffer.from(token, 'utf8')] };
  }

  private text(id: number): string {
    return this.tokensAsIds ? `token_id:${id}` : this.tokenizer.decode([id], false);
  }
}
