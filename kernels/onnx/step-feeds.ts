import * as ort from 'onnxruntime-node';
import type { AdapterLayout } from '../../memory/adapter-layout.js';
import { type KvLayout, kvElementOffset } from '../../memory/kv-layout.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, TARGET_MODULES, type TargetModule } from '../../model/llama-modules.js';
import type { RopeRotation } from '../../model/rope-frequencies.js';
import { logitTokenIndices, type StepPlan } from '../engine.js';
import { loraRowReads, loraStackNames, MASKED, STEP_INPUTS } from './llama-graph.js';
import { moduleMaxRank, packSegments } from './lora-segments.js';
import { blockRowsOf, type LoraSlotStack } from './lora-slot-stack.js';

/**
 * Packs a StepPlan into the step graph's per-run inputs (llama-graph.ts): tokens flat, attention
 * rows padded to the longest sequence's new tokens, past KV blocks padded with the zero page and
 * masked out.
 */
export interface PackedStep {
  /** Step inputs; the engine adds the weights and the pool. */
  feeds: Record<string, ort.Tensor>;
  /** Modules some adapter in the batch targets: the graph variant this step needs. */
  loraModules: TargetModule[];
  /** The step's tokens (T), flat. */
  numTokens: number;
  /** Logit rows the plan asked for (the graph computes at least one). */
  numLogitRows: number;
}

/**
 * With `loraModules` given, the graph has LoRA on exactly those modules (a module no adapter of
 * the batch targets gets one zero-page row with a zero scale); otherwise on the modules the
 * batch's adapters target.
 */
export function packStep(
  plan: StepPlan,
  config: LlamaConfig,
  kv: KvLayout,
  rope: RopeRotation,
  stack: LoraSlotStack,
  loraModules?: readonly TargetModule[],
  padRankTo?: number,
  /** The stack's step (LoraSlotStack.beginStep) when the plan is a part of one; else a new one. */
  stackStep?: number,
): PackedStep {
  const seqs = plan.sequences;
  const B = seqs.length;
  let S = 1;
  let NB = 1;
  let T = 0;
  const start: number[] = [];
  for (const s of seqs) {
    start.push(T);
    T += s.tokens.length;
    S = Math.max(S, s.tokens.length);
    NB = Math.max(NB, Math.ceil(s.startPos / kv.tokensPerPage));
  }
  const pastSlots = NB * kv.tokensPerPage;
  const C = pastSlots + S;
  const half = config.headDim / 2;
  const L = config.numLayers;

  const ids = new BigInt64Array(T);
  const cos = new Float32Array(T * half);
  const sin = new Float32Array(T * half);
  const paddedToken = new BigInt64Array(B * S);
  const tokenRow = new BigInt64Array(T);
  const kvPages = new BigInt64Array(2 * L * B * NB);
  const mask = new Float32Array(B * S * C).fill(MASKED);
  const rows = logitTokenIndices(plan);

  seqs.forEach((s, b) => {
    const n = s.tokens.length;
    for (let j = 0; j < n; j++) {
      const t = start[b] + j;
      ids[t] = BigInt(s.tokens[j]);
      tokenRow[t] = BigInt(b * S + j);
      const pos = s.startPos + j;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos * rope.invFreq[i]);
        // HF: cos and sin in f32, then times attention_scaling (1 but for YaRN).
        cos[t * half + i] = Math.fround(Math.cos(angle)) * rope.attentionScaling;
        sin[t * half + i] = Math.fround(Math.sin(angle)) * rope.attentionScaling;
      }
    }
    // Padding rows repeat the sequence's first token (any real token would do: nobody reads them).
    for (let q = 0; q < S; q++)
      paddedToken[b * S + q] = BigInt(q < n ? start[b] + q : Math.min(start[b], T - 1));
    const blocks = Math.ceil(s.startPos / kv.tokensPerPage);
    for (let lk = 0; lk < 2 * L; lk++) {
      for (let blk = 0; blk < blocks; blk++) {
        kvPages[(lk * B + b) * NB + blk] = BigInt(s.pageTable[blk * 2 * L + lk]);
      }
    }
    for (let q = 0; q < S; q++) {
      const row = (b * S + q) * C;
      mask.fill(0, row, row + s.startPos);
      // Padding rows see one slot so their softmax stays finite.
      const visible = Math.max(1, Math.min(q + 1, n));
      mask.fill(0, row + pastSlots, row + pastSlots + visible);
    }
  });

  const numLogitRows = rows.length;
  if (rows.length === 0) rows.push(0);
  const feeds: Record<string, ort.Tensor> = {
    [STEP_INPUTS.inputIds]: new ort.Tensor('int64', ids, [T]),
    [STEP_INPUTS.paddedToken]: new ort.Tensor('int64', paddedToken, [B * S]),
    [STEP_INPUTS.tokenRow]: new ort.Tensor('int64', tokenRow, [T]),
    [STEP_INPUTS.ropeCos]: new ort.Tensor('float32', cos, [T, 1, half]),
    [STEP_INPUTS.ropeSin]: new ort.Tensor('float32', sin, [T, 1, half]),
    [STEP_INPUTS.kvPages]: new ort.Tensor('int64', kvPages, [2 * L, B, NB]),
    [STEP_INPUTS.attnMask]: new ort.Tensor('float32', mask, [B, 1, 1, S, C]),
    [STEP_INPUTS.logitRows]: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]),
  };
  const active = packLora(plan, config, feeds, stack, loraModules, padRankTo, stackStep ?? stack.beginStep());
  return { feeds, loraModules: active, numTokens: T, numLogitRows };
}

/**
 * For each module of the graph's LoRA set: the step's adapters go into the stacked slots
 * (LoraSlotStack) as far as its rows allow, those already there first, then by tokens and rank;
 * every other adapted sequence is a gathered segment (loraInputNames): its adapter's A and Bᵀ
 * rank-rows per layer, read from the pool by row id. Returns the modules, in TARGET_MODULES order.
 */
function packLora(
  plan: StepPlan,
  config: LlamaConfig,
  feeds: Record<string, ort.Tensor>,
  stack: LoraSlotStack,
  fixedModules: readonly TargetModule[] | undefined,
  padRankTo: number | undefined,
  step: number,
): TargetModule[] {
  const tokenCount = new Map<AdapterLayout, number>();
  for (const s of plan.sequences)
    if (s.adapter) tokenCount.set(s.adapter, (tokenCount.get(s.adapter) ?? 0) + s.tokens.length);
  const adapters = [...tokenCount.keys()];
  const active: TargetModule[] = [];
  const L = config.numLayers;
  const pageSize = config.hiddenSize;
  for (const m of TARGET_MODULES) {
    const ranks = new Map(adapters.map((a) => [a, moduleMaxRank(a, m)]));
    const work = (a: AdapterLayout) => tokenCount.get(a)! * ranks.get(a)!;
    // Fewest tokens first, then the smallest rank: a gathered segment copies its adapter's rows,
    // which a prompt's many tokens share and a decode token would pay alone; and in the blocked
    // form every block is padded to the most tokens an adapter has, so a prompt taken first would
    // turn the step's decode tokens away. Under contention the stack's rows then hold more adapters.
    const users = adapters
      .filter((a) => work(a) > 0)
      .sort((x, y) => tokenCount.get(x)! - tokenCount.get(y)! || ranks.get(x)! - ranks.get(y)!);
    const wanted = fixedModules ? fixedModules.includes(m) : users.length > 0;
    if (!wanted && users.length > 0)
      throw new Error(`the step graph has no LoRA on ${m}, which an adapter targets`);
    if (!wanted) continue;
    active.push(m);
    const { inFeatures, outFeatures } = moduleShape(config, m);
    // Padded (PEFT-style baseline): nothing stacked, every adapter gathered and padded to one rank.
    const placed =
      padRankTo === undefined
        ? stack.place(m, users, step, (a) => tokenCount.get(a)!)
        : new Map<AdapterLayout, number>();
    const gathered = new Map<AdapterLayout, number>();
    for (const a of users) if (!placed.has(a)) gathered.set(a, ranks.get(a)!);
    packStacked(plan, m, placed, stack, L, feeds);
    feeds[loraStackNames(m).active] = new ort.Tensor('bool', new Uint8Array([users.length > 0 ? 1 : 0]), []);
    packSegments(
      padRankTo,
      plan,
      m,
      gathered,
      L,
      loraRowReads(inFeatures, pageSize),
      loraRowReads(outFeatures, pageSize),
      pageSize,
      feeds,
    );
  }
  return active;
}

function feedBlocks(
  feeds: Record<string, ort.Tensor>,
  m: TargetModule,
  views: { a: ort.Tensor[]; bt: ort.Tensor[] },
  numLayers: number,
): void {
  const names = loraStackNames(m);
  for (let l = 0; l < numLayers; l++) {
    feeds[names.aBlocks(l)] = views.a[l];
    feeds[names.btBlocks(l)] = views.bt[l];
  }
}

/**
 * Module m's stack inputs (llama-graph.ts loraStackNames): every layer's rows the step's stacked
 * adapters reach, as blocks, and the slotted tokens in them: blocked where blockedForm allows,
 * else masked (one block of all U rows, every token, each masked to its adapter's columns). No
 * stacked token: empty tensors.
 */
function packStacked(
  plan: StepPlan,
  m: TargetModule,
  placed: ReadonlyMap<AdapterLayout, number>,
  stack: LoraSlotStack,
  numLayers: number,
  feeds: Record<string, ort.Tensor>,
): void {
  // The rows the step reads, [low, used): its stacked adapters' window of the stack.
  let low = Number.POSITIVE_INFINITY;
  let used = 0;
  for (const [a, first] of placed) {
    low = Math.min(low, first);
    used = Math.max(used, first + stack.rowsOf(a, m));
  }
  if (placed.size === 0) low = 0;
  const tokens: Array<{ token: number; first: number; rows: number }> = [];
  let t = 0;
  for (const s of plan.sequences) {
    const first = s.adapter ? placed.get(s.adapter) : undefined;
    if (first !== undefined) {
      const rows = stack.rowsOf(s.adapter!, m);
      for (let j = 0; j < s.tokens.length; j++) tokens.push({ token: t + j, first: first - low, rows });
    }
    t += s.tokens.length;
  }
  const U = used - low;
  const names = loraStackNames(m);
  const blocks = blockedForm(m, placed, stack, low, U, tokens);
  let blockTokens: BigInt64Array;
  let blockMask: Uint8Array;
  let maskShape: number[];
  const { G, R } = blocks ?? { G: 1, R: U };
  if (blocks) {
    const { S } = blocks;
    blockTokens = new BigInt64Array(G * S);
    blockMask = new Uint8Array(G * S);
    const filled = new Uint32Array(G);
    for (const { token, first, rows } of tokens) {
      for (let g = first / R; g < (first + rows) / R; g++) {
        const at = g * S + filled[g]++;
        blockTokens[at] = BigInt(token);
        blockMask[at] = 1;
      }
    }
    maskShape = [G, S, 1];
  } else {
    blockTokens = new BigInt64Array(tokens.length);
    blockMask = new Uint8Array(tokens.length * U);
    tokens.forEach(({ token, first, rows }, i) => {
      blockTokens[i] = BigInt(token);
      blockMask.fill(1, i * U + first, i * U + first + rows);
    });
    maskShape = [1, tokens.length, U];
  }
  feeds[names.blockTokens] = new ort.Tensor('int64', blockTokens, [maskShape[0], maskShape[1], 1]);
  feeds[names.blockMask] = new ort.Tensor('bool', blockMask, maskShape);
  feedBlocks(feeds, m, stack.blocks(m, low, used, G), numLayers);
}

/**
 * The blocked form of module m's stack for this step (llama-graph.ts loraStackNames), when it
 * applies: the rows the step reads cut into G blocks of R (blockRowsOf: every stacked adapter
 * covers whole blocks of its own, so ranks 8 to 64 share blocks of 8), and the N tokens are at
 * least twice the most one adapter has (S, every block padded to it). Each token then multiplies
 * its own adapter's rows, block by block (its partial expansions summed by the scatter), not all
 * U rows: at decode the masked form did U/rank times the work.
 */
function blockedForm(
  m: TargetModule,
  placed: ReadonlyMap<AdapterLayout, number>,
  stack: LoraSlotStack,
  low: number,
  U: number,
  tokens: ReadonlyArray<{ first: number }>,
): { G: number; S: number; R: number } | null {
  if (placed.size === 0 || tokens.length === 0) return null;
  const R = blockRowsOf([...placed].map(([a, first]) => ({ first: first - low, rows: stack.rowsOf(a, m) })));
  if (R === 0) return null;
  const G = U / R;
  const perBlock = new Uint32Array(G);
  for (const { first } of tokens) perBlock[first / R]++;
  const S = Math.max(...perBlock);
  // Its work is U·S multiply-adds per input feature (padding places included), the masked
  // form's N·U: worth its few extra ops where that at least halves it.
  return tokens.length >= 2 * S ? { G, S, R } : null;
}

/**
 * Writes the step's new K/V (graph output [2L, T, kvDim], tokens flat) into each sequence's pages.
 * A page's first token clears the whole page first: the graph reads a sequence's last page whole
 * and masks its unwritten slots, and a freed page still holds its last owner's K/V or adapter rows.
 * Those may be NaN or Inf (a poisoned adapter), and a masked score is −1e9 added, a masked value
 * weighs 0 — neither survives NaN (0 × NaN = NaN), so stale slots must be zeros, not just masked.
 */
export function writeNewKv(
  storage: Float32Array,
  kv: KvLayout,
  plan: StepPlan,
  T: number,
  kvNew: Float32Array,
): void {
  let t = 0;
  for (const s of plan.sequences) {
    for (let j = 0; j < s.tokens.length; j++, t++) {
      const pos = s.startPos + j;
      for (let l = 0; l < kv.numLayers; l++) {
        for (const kind of [0, 1] as const) {
          const src = ((l * 2 + kind) * T + t) * kv.kvDim;
          const dst = kvElementOffset(kv, s.pageTable, l, kind, pos);
          if (pos % kv.tokensPerPage === 0) storage.fill(0, dst, dst + kv.pageSize);
          storage.set(kvNew.subarray(src, src + kv.kvDim), dst);
        }
      }
    }
  }
}
