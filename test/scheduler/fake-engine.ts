import type { Engine, StepPlan } from '../../kernels/engine.js';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { KvCache } from '../../memory/kv-cache.js';
import { type KvLayout, kvLayout } from '../../memory/kv-layout.js';
import { PagePool } from '../../memory/page-pool.js';
import { type LlamaConfig, parseLlamaConfig } from '../../model/llama-config.js';
import type { TokenDecoder } from '../../scheduler/stop-checker.js';

/** hidden 8, one KV head of 4: a page holds 2 tokens, a block (1 layer, K and V) is 2 pages. */
export const fakeConfig: LlamaConfig = parseLlamaConfig({
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 16,
  vocab_size: 32,
  eos_token_id: 31,
});

export interface RecordedStep {
  seqId: number;
  tokens: number[];
  startPos: number;
  logits: 'last' | 'all' | 'none';
  adapter: string | null;
}

/**
 * What the model "says" next: a token id (its logit wins by far) or a whole logits row. `context`
 * is every token the sequence has in its (simulated) KV cache, the new ones included.
 */
export type NextToken = (seqId: number, context: readonly number[]) => number | Float32Array;

/**
 * A scripted Engine whose "KV cache" is the token ids themselves, kept in the pages of each
 * sequence's table (a K page's slot holds its position's token): a wrong startPos, a missing
 * recompute, a page shared wrongly (prefix caching) or reused while still read shows up as a wrong
 * context. It checks page tables are big enough, that no page is written by two sequences of a step
 * or written by one while another reads it, records every plan, and can be told to fail or to
 * hold a step.
 */
export class FakeEngine implements Engine {
  readonly kind = 'reference' as const;
  readonly config = fakeConfig;
  readonly kvLayout: KvLayout;
  readonly steps: RecordedStep[][] = [];
  /** Throw this step's error instead of answering (checked before anything is written). */
  failWhen: ((plan: StepPlan) => Error | null) | null = null;
  /** When set, a step waits for it before answering. */
  gate: Promise<void> | null = null;
  /** Called as each step starts (index from 0), while it is in flight. */
  onStep: ((stepIndex: number) => void) | null = null;
  /** K page → the token id at each of its slots (undefined: never written). */
  private readonly pageTokens = new Map<number, Array<number | undefined>>();

  constructor(
    readonly pool: PagePool,
    private readonly nextToken: NextToken,
  ) {
    this.kvLayout = kvLayout(fakeConfig);
  }

  async step(plan: StepPlan): Promise<Float32Array> {
    this.steps.push(
      plan.sequences.map((s) => ({
        seqId: s.seqId,
        tokens: Array.from(s.tokens),
        startPos: s.startPos,
        logits: s.logits,
        adapter: s.adapter?.name ?? null,
      })),
    );
    this.onStep?.(this.steps.length - 1);
    if (this.gate) await this.gate;
    const error = this.failWhen?.(plan);
    if (error) throw error;
    const { tokensPerPage } = this.kvLayout;
    const kPage = (table: Int32Array, pos: number) => table[Math.floor(pos / tokensPerPage) * 2];
    const writer = new Map<number, number>();
    const readers = new Map<number, Set<number>>();
    for (const s of plan.sequences) {
      const needed = Math.ceil((s.startPos + s.tokens.length) / tokensPerPage) * 2;
      if (s.pageTable.length < needed)
        throw new Error(`seq ${s.seqId}: page table of ${s.pageTable.length} pages, needs ${needed}`);
      for (let pos = 0; pos < s.startPos + s.tokens.length; pos++) {
        const page = kPage(s.pageTable, pos);
        if (pos < s.startPos) {
          readers.set(page, (readers.get(page) ?? new Set()).add(s.seqId));
          continue;
        }
        const other = writer.get(page);
        if (other !== undefined && other !== s.seqId)
          throw new Error(`page ${page} is written by two sequences in one step (${other}, ${s.seqId})`);
        writer.set(page, s.seqId);
      }
    }
    for (const [page, seqId] of writer)
      for (const reader of readers.get(page) ?? [])
        if (reader !== seqId)
          throw new Error(`page ${page} is written by seq ${seqId} while seq ${reader} reads it`);
    const rows: Float32Array[] = [];
    for (const s of plan.sequences) {
      const context: number[] = [];
      for (let pos = 0; pos < s.startPos; pos++) {
        const token = this.pageTokens.get(kPage(s.pageTable, pos))?.[pos % tokensPerPage];
        if (token === undefined)
          throw new Error(`seq ${s.seqId}: startPos ${s.startPos} but position ${pos} was never cached`);
        context.push(token);
      }
      Array.from(s.tokens).forEach((token, i) => {
        const pos = s.startPos + i;
        const page = kPage(s.pageTable, pos);
        const slots = this.pageTokens.get(page) ?? [];
        slots[pos % tokensPerPage] = token;
        this.pageTokens.set(page, slots);
        context.push(token);
      });
      if (s.logits === 'last') rows.push(this.logitsRow(s.seqId, context));
      // 'all': host sampling asks for every row of a sequence whose prompt is scored (logprobs).
      if (s.logits === 'all')
        for (let i = 0; i < s.tokens.length; i++)
          rows.push(this.logitsRow(s.seqId, context.slice(0, s.startPos + i + 1)));
    }
    const out = new Float32Array(rows.length * fakeConfig.vocabSize);
    rows.forEach((row, i) => {
      out.set(row, i * fakeConfig.vocabSize);
    });
    return out;
  }

  writeAdapter(): void {}

  async close(): Promise<void> {}

  private logitsRow(seqId: number, context: readonly number[]): Float32Array {
    const next = this.nextToken(seqId, context);
    if (next instanceof Float32Array) return next;
    const row = new Float32Array(fakeConfig.vocabSize);
    row[next] = 100;
    return row;
  }
}

export function fakeKv(
  numPages: number,
  options: { prefixCaching?: boolean } = {},
): { pool: PagePool; kvCache: KvCache } {
  const pool = new PagePool(numPages, fakeConfig.hiddenSize);
  return { pool, kvCache: new KvCache(pool, kvLayout(fakeConfig), options) };
}

/** Token t decodes to vocab[t] (or a letter), whole, with nothing held back. */
export function tableDecoder(vocab: readonly string[] = []): () => TokenDecoder {
  return () => ({
    push: (id) => vocab[id] ?? String.fromCharCode(97 + (id % 26)),
    flush: () => '',
  });
}

export function fakeAdapter(name: string): AdapterLayout {
  return { name, rank: 1, modules: [], allPages: new Int32Array(0) };
}

/** Greedy, and dependent on the whole context, so lost, duplicated or reordered KV shows in the text. */
export const contextSum: NextToken = (_seq, context) => context.reduce((a, b) => a + b, 0) % 26;

/** What contextSum generates for `prompt` alone: the text a choice must have however it was batched. */
export function contextSumTokens(
  prompt: readonly number[],
  maxTokens: number,
  maxModelLen: number,
): number[] {
  const context = [...prompt];
  const out: number[] = [];
  while (out.length < maxTokens && context.length < maxModelLen) {
    const next = context.reduce((a, b) => a + b, 0) % 26;
    out.push(next);
    context.push(next);
  }
  return out;
}
