import { partialTagAtEnd } from './tool-parsers/auto-tool-call-reader.js';

/** The reasoning formats `--reasoning-parser` reads (vLLM's names). */
export const REASONING_PARSERS = ['deepseek_r1'] as const;
export type ReasoningParserName = (typeof REASONING_PARSERS)[number];

/** What a piece of output adds to the reasoning and to the answer after it. */
export interface ReasoningDelta {
  reasoning: string;
  content: string;
}

const START = '<think>';
const END = '</think>';

/** The text that ends the parser's reasoning, after which structured output starts (vLLM's rule); null: no parser. */
export function reasoningEnd(parser: ReasoningParserName | null): string | null {
  return parser === null ? null : END;
}

/**
 * DeepSeek R1's reasoning (vLLM's `deepseek_r1`, for R1 and its distilled Llama models): the
 * output starts with its reasoning, up to `</think>`, and the answer follows. Its chat template
 * opens `<think>` in the prompt, so the output usually starts inside it; a `<think>` the model
 * writes first is not part of the reasoning. An output that never closes it is all reasoning
 * and has no answer (content null, as vLLM gives it). The same reader serves a stream and a
 * whole answer, so both say the same: tags cut between pieces are held back until they are whole.
 */
export class ReasoningReader {
  private pending = '';
  private phase: 'start' | 'reasoning' | 'answer' = 'start';
  reasoning = '';
  content = '';

  /** Whether the reasoning has ended (the answer has begun). */
  get ended(): boolean {
    return this.phase === 'answer';
  }

  push(text: string): ReasoningDelta {
    const out: ReasoningDelta = { reasoning: '', content: '' };
    this.pending += text;
    if (this.phase === 'start') {
      if (this.pending.startsWith(START)) {
        this.pending = this.pending.slice(START.length);
        this.phase = 'reasoning';
      } else if (START.startsWith(this.pending)) return out;
      else this.phase = 'reasoning';
    }
    if (this.phase === 'reasoning') {
      const end = this.pending.indexOf(END);
      if (end < 0) {
        const keep = partialTagAtEnd(this.pending, END);
        out.reasoning = this.pending.slice(0, this.pending.length - keep);
        this.pending = this.pending.slice(this.pending.length - keep);
      } else {
        out.reasoning = this.pending.slice(0, end);
        this.pending = this.pending.slice(end + END.length);
        this.phase = 'answer';
      }
    }
    if (this.phase === 'answer') {
      out.content = this.pending;
      this.pending = '';
    }
    this.reasoning += out.reasoning;
    this.content += out.content;
    return out;
  }

  /** The output ended: what was held back (a tag's start that never completed) is reasoning. */
  finish(): ReasoningDelta {
    const out: ReasoningDelta = { reasoning: this.phase === 'answer' ? '' : this.pending, content: '' };
    this.pending = '';
    this.reasoning += out.reasoning;
    return out;
  }
}
