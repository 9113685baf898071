import { notSupported } from './api-error.js';
import { type ReasoningParserName, ReasoningReader } from './reasoning.js';
import type { ChatCompletionRequest } from './schemas/chat-request.js';
import type { ToolCall, ToolCallDelta } from './tool-call-stream.js';
import { type MessageReader, messageReader, type ToolCalling, type ToolCallOutput } from './tool-calls.js';

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
  /** The answer's text, when no tool-call reader keeps it. */
  private passed = '';

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
    const text = this.message ? this.message.content : (this.thinking?.content ?? this.passed);
    if (this.thinking && (!this.thinking.ended || text === '')) return null;
    return text;
  }

  get calls(): readonly ToolCall[] {
    return this.message?.calls ?? [];
  }

  private answer(text: string, end: boolean, reasoning: string): ChatOutputDelta {
    if (!this.message) {
      this.passed += text;
      return { reasoning, content: text, calls: [] };
    }
    const read = this.message.push(text);
    if (end) {
      const last = this.message.finish();
      read.content += last.content;
      read.calls.push(...last.calls);
    }
    return { reasoning, content: read.content, calls: read.calls };
  }
}

/** A choice's reader: its reasoning apart (--reasoning-parser), its tool calls apart; null when its text is its content. */
export function chatOutputReader(
  output: ToolCallOutput | null,
  reasoningParser: ReasoningParserName | null,
): ChatOutputReader | null {
  if (!output && !reasoningParser) return null;
  return new ChatOutputReader(
    reasoningParser ? new ReasoningReader() : null,
    output ? messageReader(output) : null,
  );
}

/**
 * Guided output with a reasoning parser is refused: the grammar would shape the reasoning too
 * (vLLM starts it after the reasoning ends, which Loom's matcher cannot yet).
 */
export function refuseGuideWithReasoning(
  body: ChatCompletionRequest,
  tools: ToolCalling,
  /** What the route's clients call response_format (the Responses API's text.format). */
  responseFormatParam = 'response_format',
): void {
  const field = STRUCTURED_OUTPUT_FIELDS.find(
    (f) => body[f] != null && !(f === 'response_format' && body.response_format?.type === 'text'),
  );
  const param = tools.guide?.param ?? (field === 'response_format' ? responseFormatParam : (field ?? null));
  if (param)
    throw notSupported(
      param,
      'Structured output (or a named or "required" tool_choice) on a server with --reasoning-parser (the grammar would shape the reasoning too)',
    );
}

const STRUCTURED_OUTPUT_FIELDS = [
  'response_format',
  'guided_json',
  'guided_regex',
  'guided_choice',
  'guided_grammar',
  'structured_outputs',
] as const;
