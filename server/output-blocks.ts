import type { TokenLogprobs } from '../kernels/logprobs.js';
import type { ChatOutputReader } from './chat-output.js';
import type { ChatTokenLogprob, ChoiceLogprobs } from './logprobs.js';
import { appendCallDeltas, type ToolCallDelta } from './tool-call-stream.js';

export type OutputLogprob = ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] };

/** A run of the model's text, with its tokens' log-probabilities where they were asked for. */
export interface TextBlock {
  kind: 'text';
  text: string;
  logprobs: OutputLogprob[];
}

/** One tool call: its id, the function's name, and the arguments' JSON text so far. */
export interface CallBlock {
  kind: 'call';
  id: string;
  name: string;
  arguments: string;
}

/** A reasoning model's reasoning (--reasoning-parser), before its answer. */
export interface ReasoningBlock {
  kind: 'reasoning';
  text: string;
}

export type OutputBlock = TextBlock | CallBlock | ReasoningBlock;

/** What a streaming API turns into its own events (the Responses API's, Anthropic's). */
export interface OutputBlockListener {
  started(block: OutputBlock, index: number): void;
  text(block: TextBlock, index: number, delta: string, logprobs: readonly OutputLogprob[]): void;
  reasoning(block: ReasoningBlock, index: number, delta: string): void;
  arguments(block: CallBlock, index: number, delta: string): void;
  ended(block: OutputBlock, index: number): void;
}

/**
 * One choice's output as the block-shaped APIs give it, where chat gives one message: text in
 * a text block, each tool call a block of its own, in the order the model wrote them. A block
 * ends when the next starts, or when the output ends; a listener hears each change as it
 * happens (a stream), and a whole answer reads the blocks at the end.
 */
export class OutputBlocks {
  readonly blocks: OutputBlock[] = [];
  private open: OutputBlock | null = null;

  constructor(private readonly listener: OutputBlockListener | null = null) {}

  /** Text the model wrote, with the log-probabilities of its tokens when they are asked for. */
  text(text: string, logprobs: readonly OutputLogprob[] = []): void {
    if (!text && logprobs.length === 0) return;
    const block =
      this.open?.kind === 'text' ? this.open : this.start({ kind: 'text', text: '', logprobs: [] });
    block.text += text;
    block.logprobs.push(...logprobs);
    this.listener?.text(block, this.blocks.length - 1, text, logprobs);
  }

  /** Reasoning the model wrote before its answer. */
  reasoning(text: string): void {
    if (!text) return;
    const block = this.open?.kind === 'reasoning' ? this.open : this.start({ kind: 'reasoning', text: '' });
    block.text += text;
    this.listener?.reasoning(block, this.blocks.length - 1, text);
  }

  /** Tool call deltas: a new call (id and name) starts a block, later deltas add to its arguments. */
  calls(deltas: readonly ToolCallDelta[]): void {
    for (const delta of deltas) {
      if (delta.id !== undefined)
        this.start({ kind: 'call', id: delta.id, name: delta.function.name ?? '', arguments: '' });
      const block = this.open;
      if (block?.kind !== 'call' || !delta.function.arguments) continue;
      block.arguments += delta.function.arguments;
      this.listener?.arguments(block, this.blocks.length - 1, delta.function.arguments);
    }
  }

  /** The output ended: the open block ends. */
  finish(): void {
    this.close();
  }

  private start<T extends OutputBlock>(block: T): T {
    this.close();
    this.blocks.push(block);
    this.open = block;
    this.listener?.started(block, this.blocks.length - 1);
    return block;
  }

  private close(): void {
    if (!this.open) return;
    const block = this.open;
    this.open = null;
    this.listener?.ended(block, this.blocks.length - 1);
  }
}

/**
 * Feeds a choice's output into its blocks as it comes: through the choice's reader when it has
 * one (reasoning, answer text and tool calls apart: chat-output.ts), else as text with its
 * tokens' scores in the chat shape when `logprobs` formats them.
 */
export function choiceFeeder(reader: ChatOutputReader | null, logprobs: ChoiceLogprobs | null) {
  return (
    blocks: OutputBlocks,
    piece: { text: string; tokenIds: readonly number[]; scores: readonly TokenLogprobs[]; end: boolean },
  ): void => {
    if (!reader) {
      blocks.text(piece.text, logprobs ? logprobs.chat(piece.tokenIds, piece.scores).content : []);
      return;
    }
    const read = reader.push(piece.text);
    if (piece.end) {
      const last = reader.finish();
      read.reasoning += last.reasoning;
      read.content += last.content;
      appendCallDeltas(read.calls, last.calls);
    }
    // Arguments of a call that was arriving came before any text of this piece; new calls after it.
    const firstNew = read.calls.findIndex((delta) => delta.id !== undefined);
    const arriving = firstNew < 0 ? read.calls : read.calls.slice(0, firstNew);
    blocks.reasoning(read.reasoning);
    blocks.calls(arriving);
    blocks.text(read.content);
    blocks.calls(read.calls.slice(arriving.length));
  };
}

/** The blocks as one assistant chat message (a stored response's answer, for the turn after it). */
export function assistantMessage(blocks: readonly OutputBlock[]): {
  role: 'assistant';
  content: string | null;
  tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }>;
} {
  const text = blocks.map((b) => (b.kind === 'text' ? b.text : '')).join('');
  const calls = blocks.flatMap((b) =>
    b.kind === 'call'
      ? [{ id: b.id, type: 'function' as const, function: { name: b.name, arguments: b.arguments } }]
      : [],
  );
  return calls.length > 0
    ? { role: 'assistant', content: text || null, tool_calls: calls }
    : { role: 'assistant', content: text };
}
