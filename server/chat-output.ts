import { type ReasoningParserName, ReasoningReader } from './reasoning.js';
import { appendCallDeltas, type ToolCall, type ToolCallDelta } from './tool-call-stream.js';
import { type MessageReader, messageReader, type ToolCallOutput } from './tool-calls.js';

/** What a piece of a choice's output adds to its message. */
export interface ChatOutputDelta {
  reasoning: string;
  content: string;
  calls: ToolCallDelta[];
}

/**
 * One chat choice's output read as its message while it comes: the reasoning first when the
 * server has a reasoning parser (reasoning.ts), then the answer, read for tool calls when the
 * request may make them (tool-calls.ts). Streamed and whole choices go through the same reader.
 */
export class ChatOutputReader {
  /** One of the two at least (chatOutputReader makes none for a choice whose text is its content). */
  constructor(
    private readonly thinking: ReasoningReader | null,
    private readonly message: MessageReader | null,
  ) {}

  push(text: string): ChatOutputDelta {
    if (!this.thinking) return this.answer(text, false, '');
    const split = this.thinking.push(text);
    return this.answer(split.content, false, split.reasoning);
  }

  /** The output ended: what was held back is settled. */
  finish(): ChatOutputDelta {
    const rest = this.thinking?.finish() ?? { reasoning: '', content: '' };
    return this.answer(rest.content, true, rest.reasoning);
  }

  /** The reasoning so far, or null without a reasoning parser. */
  get reasoning(): string | null {
    return this.thinking ? this.thinking.reasoning : null;
  }

  /**
   * The answer's text so far, without the calls read out of it; null when a reasoning model's
   * output never ended its reasoning, or ended it and wrote nothing else (vLLM's `content or None`).
   */
  get content(): string | null {
    const text = this.message ? this.message.content : (this.thinking?.content ?? '');
    if (this.thinking && (!this.thinking.ended || text === '')) return null;
    return text;
  }

  get calls(): readonly ToolCall[] {
    return this.message?.calls ?? [];
  }

  private answer(text: string, end: boolean, reasoning: string): ChatOutputDelta {
    if (!this.message) return { reasoning, content: text, calls: [] };
    const read = this.message.push(text);
    if (end) {
      const last = this.message.finish();
      read.content += last.content;
      appendCallDeltas(read.calls, last.calls);
    }
    return { reasoning, content: read.content, calls: read.calls };
  }
}

/**
 * A choice's reader: its reasoning apart (--reasoning-parser), its tool calls apart; null when its
 * text is its content. `streamed`: the choice goes out as it comes, so calls are sent while they
 * arrive (tool_choice "auto": AutoToolCallReader).
 */
export function chatOutputReader(
  output: ToolCallOutput | null,
  reasoningParser: ReasoningParserName | null,
  streamed: boolean,
): ChatOutputReader | null {
  if (!output && !reasoningParser) return null;
  return new ChatOutputReader(
    reasoningParser ? new ReasoningReader() : null,
    output ? messageReader(output, streamed) : null,
  );
}
