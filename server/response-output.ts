import { randomUUID } from 'node:crypto';
import type { ChatTokenLogprob } from './logprobs.js';
import type { ToolCallDelta } from './tool-call-stream.js';

type OutputLogprob = ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] };

interface OutputText {
  type: 'output_text';
  text: string;
  annotations: never[];
  logprobs?: OutputLogprob[];
}

export interface MessageItem {
  id: string;
  type: 'message';
  role: 'assistant';
  status: 'in_progress' | 'completed' | 'incomplete';
  content: OutputText[];
}

export interface FunctionCallItem {
  id: string;
  type: 'function_call';
  status: 'in_progress' | 'completed' | 'incomplete';
  call_id: string;
  name: string;
  arguments: string;
}

export type OutputItem = MessageItem | FunctionCallItem;

function itemId(prefix: 'msg' | 'fc'): string {
  return `${prefix}_${randomUUID().replaceAll('-', '')}`;
}

/**
 * A response's `output` items as its text and calls come (the Responses API's shape of what chat
 * gives as one message): text goes into an assistant message item, each tool call is a
 * function_call item of its own, in the order the model wrote them. Streaming, each change is also
 * an event (response.output_item.added, response.output_text.delta, …, response.output_item.done)
 * for `emit`; a whole response makes the same items without them. An item is done when the next
 * one starts, or when the output ends.
 */
export class ResponseOutputItems {
  readonly items: OutputItem[] = [];
  /** The item still open (the last one), or null. */
  private open: OutputItem | null = null;

  constructor(
    /** Whether output_text parts carry logprobs (include: ["message.output_text.logprobs"]). */
    private readonly withLogprobs: boolean,
    private readonly emit: (event: Record<string, unknown>) => void = () => {},
  ) {}

  /** Text the model wrote, with the log-probabilities of its tokens when they are asked for. */
  text(text: string, logprobs: readonly OutputLogprob[] = []): void {
    if (!text && logprobs.length === 0) return;
    let item = this.open;
    if (item?.type !== 'message') {
      const part: OutputText = { type: 'output_text', text: '', annotations: [] };
      if (this.withLogprobs) part.logprobs = [];
      item = this.start({
        id: itemId('msg'),
        type: 'message',
        role: 'assistant',
        status: 'in_progress',
        content: [],
      });
      item.content.push(part);
      this.emit({
        type: 'response.content_part.added',
        item_id: item.id,
        output_index: this.items.length - 1,
        content_index: 0,
        part: { ...part, ...(part.logprobs ? { logprobs: [] } : {}) },
      });
    }
    const part = item.content[0];
    part.text += text;
    part.logprobs?.push(...logprobs);
    this.emit({
      type: 'response.output_text.delta',
      item_id: item.id,
      output_index: this.items.length - 1,
      content_index: 0,
      delta: text,
      logprobs: this.withLogprobs ? [...logprobs] : [],
    });
  }

  /** Tool call deltas: a new call (id and name) starts an item, later deltas add to its arguments. */
  calls(deltas: readonly ToolCallDelta[]): void {
    for (const delta of deltas) {
      if (delta.id !== undefined) {
        this.start({
          id: itemId('fc'),
          type: 'function_call',
          status: 'in_progress',
          call_id: delta.id,
          name: delta.function.name ?? '',
          arguments: '',
        });
      }
      const item = this.open;
      if (item?.type !== 'function_call' || !delta.function.arguments) continue;
      item.arguments += delta.function.arguments;
      this.emit({
        type: 'response.function_call_arguments.delta',
        item_id: item.id,
        output_index: this.items.length - 1,
        delta: delta.function.arguments,
      });
    }
  }

  /** The output ended: the open item is done (incomplete when the output was cut at max_output_tokens). */
  finish(incomplete: boolean): void {
    this.close(incomplete ? 'incomplete' : 'completed');
  }

  private start<T extends OutputItem>(item: T): T {
    this.close('completed');
    this.items.push(item);
    this.open = item;
    this.emit({
      type: 'response.output_item.added',
      output_index: this.items.length - 1,
      item: item.type === 'message' ? { ...item, content: [] } : { ...item },
    });
    return item;
  }

  private close(status: 'completed' | 'incomplete'): void {
    const item = this.open;
    if (!item) return;
    this.open = null;
    item.status = status;
    const outputIndex = this.items.length - 1;
    if (item.type === 'message') {
      const part = item.content[0];
      this.emit({
        type: 'response.output_text.done',
        item_id: item.id,
        output_index: outputIndex,
        content_index: 0,
        text: part.text,
        logprobs: part.logprobs ?? [],
      });
      this.emit({
        type: 'response.content_part.done',
        item_id: item.id,
        output_index: outputIndex,
        content_index: 0,
        part,
      });
    } else {
      this.emit({
        type: 'response.function_call_arguments.done',
        item_id: item.id,
        output_index: outputIndex,
        name: item.name,
        arguments: item.arguments,
      });
    }
    this.emit({ type: 'response.output_item.done', output_index: outputIndex, item });
  }
}
