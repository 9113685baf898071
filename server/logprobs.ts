import { MAX_TOP_LOGPROBS, type TokenLogprobs } from '../kernels/logprobs.js';
import { invalidRequest } from './api-error.js';
import type { ServingTokenizer } from './serving-stack.js';

/** vLLM clamps −Infinity (a masked token) to this, since JSON has no infinity. */
const LOWEST_LOGPROB = -9999;

/** What a request asks: top tokens per token (null: no log-probabilities) and whether the prompt is scored (echo). */
export interface LogprobsAsked {
  numTop: number | null;
  prompt: boolean;
}

/** The top-k count a client asked for, within vLLM's default --max-logprobs, or a 400 naming `param`. */
export function checkNumTop(value: number, param: string): number {
  if (value > MAX_TOP_LOGPROBS)
    throw invalidRequest(
      `Requested ${param} of ${value}, which is greater than max allowed: ${MAX_TOP_LOGPROBS}.`,
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
      const top: Record<string, number> = { [token]: clamped(score.logprob) };
      score.topIds.forEach((topId, r) => {
        if (r < this.numTop) top[this.text(topId)] = clamped(score.topLogprobs[r]);
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
