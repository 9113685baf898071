import type {
  CallBlock,
  OutputBlock,
  OutputBlockListener,
  OutputLogprob,
  ReasoningBlock,
  TextBlock,
} from './output-blocks.js';
import { randomHex } from './request-id.js';

interface OutputText {
  type: 'output_text';
  text: string;
  annotations: never[];
  logprobs?: OutputLogprob[];
}

type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface MessageItem {
  id: string;
  type: 'message';
  role: 'assistant';
  status: ItemStatus;
  content: OutputText[];
}

export interface FunctionCallItem {
  id: string;
  type: 'function_call';
  status: ItemStatus;
  call_id: string;
  name: string;
  arguments: string;
}

/** A reasoning model's reasoning (--reasoning-parser), as vLLM gives it: its text, no summary. */
export interface ReasoningItem {
  id: string;
  type: 'reasoning';
  status: ItemStatus;
  summary: never[];
  content: Array<{ type: 'reasoning_text'; text: string }>;
}

export type OutputItem = MessageItem | FunctionCallItem | ReasoningItem;

/**
 * The Responses API's `output` items of a choice's blocks (output-blocks.ts): a text block is an
 * assistant message item with one output_text part, a call a function_call item. As a listener it
 * also writes the API's stream events for each change (response.output_item.added,
 * response.output_text.delta, …, response.output_item.done) to `emit`. Item ids are made once
 * per block, so the streamed items and the final response's agree.
 */
export class ResponseItems implements OutputBlockListener {
  private readonly ids = new WeakMap<OutputBlock, string>();
  /** Set before the blocks finish when the output was cut at max_output_tokens: the last item is incomplete. */
  incomplete = false;

  constructor(
    /** Whether output_text parts carry logprobs (include: ["message.output_text.logprobs"]). */
    private readonly withLogprobs: boolean,
    private readonly emit: (event: Record<string, unknown>) => void = () => {},
  ) {}

  /** The items of the finished output. */
  items(blocks: readonly OutputBlock[]): OutputItem[] {
    return blocks.map((block, i) =>
      this.item(block, this.incomplete && i === blocks.length - 1 ? 'incomplete' : 'completed'),
    );
  }

  started(block: OutputBlock, index: number): void {
    const item = this.item(block, 'in_progress');
    if (item.type === 'message') {
      this.emit({ type: 'response.output_item.added', output_index: index, item: { ...item, content: [] } });
      this.emit({
        type: 'response.content_part.added',
        item_id: item.id,
        output_index: index,
        content_index: 0,
        part: item.content[0],
      });
    } else if (item.type === 'reasoning')
      this.emit({ type: 'response.output_item.added', output_index: index, item: { ...item, content: [] } });
    else this.emit({ type: 'response.output_item.added', output_index: index, item });
  }

  reasoning(block: ReasoningBlock, index: number, delta: string): void {
    this.emit({
      type: 'response.reasoning_text.delta',
      item_id: this.idOf(block),
      output_index: index,
      content_index: 0,
      delta,
    });
  }

  text(block: TextBlock, index: number, delta: string, logprobs: readonly OutputLogprob[]): void {
    this.emit({
      type: 'response.output_text.delta',
      item_id: this.idOf(block),
      output_index: index,
      content_index: 0,
      delta,
      logprobs: this.withLogprobs ? [...logprobs] : [],
    });
  }

  arguments(block: CallBlock, index: number, delta: string): void {
    this.emit({
      type: 'response.function_call_arguments.delta',
      item_id: this.idOf(block),
      output_index: index,
      delta,
    });
  }

  ended(block: OutputBlock, index: number): void {
    // Only the last block can end with the output; the others end when the next one starts.
    const item = this.item(block, this.incomplete ? 'incomplete' : 'completed');
    if (item.type === 'message') {
      const part = item.content[0];
      this.emit({
        type: 'response.output_text.done',
        item_id: item.id,
        output_index: index,
        content_index: 0,
        text: part.text,
        logprobs: part.logprobs ?? [],
      });
      this.emit({
        type: 'response.content_part.done',
        item_id: item.id,
        output_index: index,
        content_index: 0,
        part,
      });
    } else if (item.type === 'reasoning') {
      this.emit({
        type: 'response.reasoning_text.done',
        item_id: item.id,
        output_index: index,
        content_index: 0,
        text: item.content[0].text,
      });
    } else {
      this.emit({
        type: 'response.function_call_arguments.done',
        item_id: item.id,
        output_index: index,
        name: item.name,
        arguments: item.arguments,
      });
    }
    this.emit({ type: 'response.output_item.done', output_index: index, item });
  }

  private idOf(block: OutputBlock): string {
    let id = this.ids.get(block);
    if (id === undefined) {
      const prefix = { text: 'msg', call: 'fc', reasoning: 'rs' }[block.kind];
      id = `${prefix}_${randomHex()}`;
      this.ids.set(block, id);
    }
    return id;
  }

  /** The block as an item now (a copy: later text does not change an event already made). */
  private item(block: OutputBlock, status: ItemStatus): OutputItem {
    const id = this.idOf(block);
    if (block.kind === 'call')
      return {
        id,
        type: 'function_call',
        status,
        call_id: block.id,
        name: block.name,
        arguments: block.arguments,
      };
    if (block.kind === 'reasoning')
      return {
        id,
        type: 'reasoning',
        status,
        summary: [],
        content: [{ type: 'reasoning_text', text: block.text }],
      };
    const part: OutputText = { type: 'output_text', text: block.text, annotations: [] };
    if (this.withLogprobs) part.logprobs = [...block.logprobs];
    return { id, type: 'message', role: 'assistant', status, content: [part] };
  }
}
