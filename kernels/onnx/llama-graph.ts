import type { KvLayout } from '../../memory/kv-layout.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, moduleWeightName, type TargetModule } from '../../model/llama-modules.js';
import { isQuantized, type WeightFormat } from '../weight-quantization.js';
import { baseLinear, fusedQuantizedLinear, type WeightFiles } from './base-weights.js';
import { GraphBuilder } from './onnx-model.js';

/**
 * The whole forward pass of one engine step as one ONNX graph, so a step is one `session.run`.
 *
 * Shapes: T new tokens of B sequences, flat (no padding) for every Gemm; only attention pads each
 * sequence to S rows (the longest one's count), so a ragged or mixed prefill/decode batch wastes
 * no linear-layer work. NB blocks of past KV per sequence, C = NB·tokensPerPage + S attention
 * slots, R logit rows, R_m rank-rows of module m. All are symbolic: one session serves every
 * batch. The page pool is an input (a zero-copy view of host memory); past K/V and LoRA rows are
 * gathered from it by page id, and the step's new K/V come back as `kv_new` for the host to
 * write into pages.
 */
export const STEP_INPUTS = {
  pool: 'pool',
  inputIds: 'input_ids', // int64 [T]: the step's tokens, flat, no padding
  paddedToken: 'padded_token', // int64 [B·S]: flat index of each padded attention row (padding repeats a real token)
  tokenRow: 'token_row', // int64 [T]: padded attention row of each flat token
  ropeCos: 'rope_cos', // f32 [T, 1, headDim/2]
  ropeSin: 'rope_sin', // f32 [T, 1, headDim/2]
  kvPages: 'kv_pages', // int64 [2L, B, NB]: row layer·2 + kind
  attnMask: 'attn_mask', // f32 [B, 1, 1, S, C], 0 or -1e9
  logitRows: 'logit_rows', // int64 [R] into the T flat tokens
} as const;

export const STEP_OUTPUTS = {
  logits: 'logits', // f32 [R, vocab]
  kvNew: 'kv_new', // f32 [2L, T, kvDim]: row layer·2 + kind
} as const;

export const WEIGHT_NAMES = {
  embedTokens: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  inputNorm: (l: number) => `model.layers.${l}.input_layernorm.weight`,
  postAttentionNorm: (l: number) => `model.layers.${l}.post_attention_layernorm.weight`,
  linear: moduleWeightName,
};

/**
 * Inputs of module m's gathered LoRA (adapters not in a slot; lora-segments.ts packs them): one
 * segment per sequence of such an adapter, cut along the rank into G sub-segments of Sg token rows
 * and Rc rank-rows each (MBGMM's shape, padded only to the batch's longest such sequence and to
 * the chunk rank):
 *  - aPages / bPages: per layer, the pool-view row ids of each sub-segment's A and Bᵀ rank-rows,
 *    rows past the adapter's rank (or a layer it skips) on the zero page (int64 [L, G·Rc·chunksPerRow]);
 *  - tokens: each sub-segment row's flat token index (padding repeats a real token; int64 [G·Sg]);
 *  - groups: G (int64 [1]); the rows' scales are in the pages (Bᵀ rows times the adapter's scale
 *    of that layer: writeScaledAdapterRows), so the graph multiplies by none;
 *  - rows: the flat token each sub-segment row's result is added to (int64 [G·Sg, 1]);
 *  - rowValid: false for padding rows, whose results are dropped by selection (bool [G·Sg, 1]);
 *  - active: whether the step has any segment (bool []): without one the segment ops are skipped.
 * Every token multiplies only its own adapter's rows: nothing scales with the number of adapters.
 */
export function loraInputNames(m: TargetModule): {
  active: string;
  aPages: string;
  bPages: string;
  tokens: string;
  groups: string;
  rows: string;
  rowValid: string;
} {
  return {
    active: `lora_${m}_segments_active`,
    aPages: `lora_${m}_a`,
    bPages: `lora_${m}_b`,
    tokens: `lora_${m}_tokens`,
    groups: `lora_${m}_groups`,
    rows: `lora_${m}_rows`,
    rowValid: `lora_${m}_row_valid`,
  };
}

/**
 * Module m's stacked LoRA slots (lora-slot-stack.ts), per layer: A rows and Bᵀ rows as blocks
 * (aBlocks [G, R, in], btBlocks [G, R, out]; G·R = U, the rows the step reads, the same in every
 * layer; Bᵀ rows already times their adapter's scale in that layer, as the pages hold them); and
 * the slotted tokens as blockTokens and blockMask (below). `active` (bool []): whether any token of the
 * step has LoRA on m, stacked or gathered; without one the module's LoRA ops are skipped.
 */
export function loraStackNames(m: TargetModule): {
  active: string;
  blockTokens: string;
  blockMask: string;
  aBlocks: (layer: number) => string;
  btBlocks: (layer: number) => string;
} {
  return {
    active: `lora_${m}_active`,
    blockTokens: `lora_${m}_stack_block_tokens`,
    blockMask: `lora_${m}_stack_block_mask`,
    aBlocks: (layer) => `lora_${m}_stack_a_blocks_${layer}`,
    btBlocks: (layer) => `lora_${m}_stack_b_blocks_${layer}`,
  };
}

/**
 * How the slotted tokens meet the stack: the U rows as G blocks of R, each block's tokens (S places
 * at most) multiplying that block only: batched [G, S, in] · [G, in, R], then [G, S, R] ·
 * [G, R, out], the results scattered (added) into the tokens' rows. step-feeds.ts feeds one of two
 * shapes of it:
 *  - blocked, when every stacked adapter of the step covers whole blocks of R rows (R divides each
 *    one's first row and rows: ranks 8 to 64 share R = 8): each block's tokens are its adapter's,
 *    padded to S; a token of an adapter of k blocks gets k partial expansions, which the scatter
 *    adds up; blockMask (bool [G, S, 1]) drops the padding places;
 *  - masked, otherwise: one block of all U rows (G = 1, R = U) and every slotted token (S = N);
 *    blockMask (bool [1, N, U]) keeps each token's own adapter's columns only.
 * Both are the same ops, so the graph has no branch between them (an If costs a step what a few
 * small ops do, 88 of them a step). The blocks come as [G, R, in] and [G, R, out] views of the
 * rows (aBlocks, btBlocks), fed so: a Reshape inside the If copied them every step.
 * blockTokens (int64 [G, S, 1]): the token of each (block, place), a padding place naming token 0.
 */

/**
 * How the graph reads a LoRA rank-row of `features` elements (rows start on a page boundary,
 * memory/adapter-layout.ts). The pool is viewed as rows of `width` = gcd(features, pageSize)
 * elements (another zero-copy tensor over the same storage), and a rank-row is gathered as
 * exactly features/width of them: nothing past the row's end is read and nothing is sliced off.
 * Where that would take too many small chunks, whole pages are gathered and sliced.
 */
export interface LoraRowReads {
  width: number;
  chunksPerRow: number;
  /** chunksPerRow·width exceeds features: the gathered rows must be cut to `features`. */
  slice: boolean;
}

const MAX_CHUNKS_PER_ROW = 64;

export function loraRowReads(features: number, pageSize: number): LoraRowReads {
  let a = features;
  let b = pageSize;
  while (b !== 0) [a, b] = [b, a % b];
  if (features / a <= MAX_CHUNKS_PER_ROW) return { width: a, chunksPerRow: features / a, slice: false };
  const chunksPerRow = Math.ceil(features / pageSize);
  return { width: pageSize, chunksPerRow, slice: chunksPerRow * pageSize !== features };
}

/** The graph input that views the pool as rows of `width` elements (the pool itself at a page's width). */
export function poolViewName(width: number, pageSize: number): string {
  return width === pageSize ? STEP_INPUTS.pool : `pool_rows_${width}`;
}

/** Masked attention slots get this score: exp underflows to exactly 0 while staying finite. */
export const MASKED = -1e9;

/**
 * How weights enter the graph: as inputs fed every run (no extra memory, but onnxruntime repacks
 * each weight matrix in every Gemm call), or as initializers whose bytes come from host memory
 * through `externalData` (onnxruntime prepacks them once, at the cost of its own packed copy).
 */
export type WeightMode = 'inputs' | 'external';

/**
 * Weights that a Gemm consumes: only these gain from prepacking. Embeddings (a Gather) and norms
 * stay inputs even in 'external' mode, so onnxruntime keeps no copy of them.
 */
export function isGemmWeight(name: string): boolean {
  return name === WEIGHT_NAMES.lmHead || name.endsWith('_proj.weight');
}

export type { WeightFileLocation, WeightFiles } from './base-weights.js';

/**
 * Modules that read the same input in a layer: their LoRA shares one If per step, and their
 * quantized base weights one MatMulNBits (fusedQuantizedLinear).
 */
export const FUSED_MODULE_GROUPS: ReadonlyArray<readonly TargetModule[]> = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['gate_proj', 'up_proj'],
];
const [QKV, GATE_UP] = FUSED_MODULE_GROUPS;

export function buildStepGraph(
  config: LlamaConfig,
  kv: KvLayout,
  loraModules: readonly TargetModule[],
  weightMode: WeightMode,
  weightFiles?: WeightFiles,
  weightFormat: WeightFormat = 'f32',
): Uint8Array {
  const c = config;
  const g = new GraphBuilder(`loom_step_${loraModules.join('_') || 'base'}`);
  const L = c.numLayers;
  const hd = c.headDim;
  const kvH = c.numKvHeads;
  const group = c.numHeads / kvH;
  const qDim = c.numHeads * hd;
  const ps = kv.pageSize;
  const eps = { float: c.rmsNormEps };

  // The pool's page count stays symbolic: the graph, and a session saved from it
  // (packed-session-cache.ts), then serve any pool size.
  const pool = g.input(STEP_INPUTS.pool, 'float32', ['pool_pages', ps]);
  const ids = g.input(STEP_INPUTS.inputIds, 'int64', ['T']);
  const paddedToken = g.input(STEP_INPUTS.paddedToken, 'int64', ['BS']);
  const tokenRow = g.input(STEP_INPUTS.tokenRow, 'int64', ['T']);
  const cos = g.input(STEP_INPUTS.ropeCos, 'float32', ['T', 1, hd / 2]);
  const sin = g.input(STEP_INPUTS.ropeSin, 'float32', ['T', 1, hd / 2]);
  const kvPages = g.input(STEP_INPUTS.kvPages, 'int64', [2 * L, 'B', 'NB']);
  const mask = g.input(STEP_INPUTS.attnMask, 'float32', ['B', 1, 1, 'S', 'C']);
  const logitRows = g.input(STEP_INPUTS.logitRows, 'int64', ['R']);
  if (weightMode === 'inputs' && weightFormat !== 'f32')
    throw new Error(`${weightFormat} weights are initializers: they need weight mode 'external'`);
  const w = (name: string, dims: number[]) => g.input(name, 'float32', dims);
  /** x·Wᵀ for a Gemm weight: an initializer in `weightFormat` (base-weights.ts), or an f32 input. */
  const gemm = (x: string, name: string, outFeatures: number, inFeatures: number) =>
    weightMode === 'external'
      ? baseLinear(g, x, name, outFeatures, inFeatures, weightFormat, weightFiles)
      : g.op('Gemm', [x, w(name, [outFeatures, inFeatures])], { transB: 1 });
  const lora = new Map<TargetModule, ReturnType<typeof loraInputNames>>();
  for (const m of loraModules) {
    const names = loraInputNames(m);
    lora.set(m, {
      active: g.input(names.active, 'bool', []),
      aPages: g.input(names.aPages, 'int64', [L, `RA_${m}`]),
      bPages: g.input(names.bPages, 'int64', [L, `RB_${m}`]),
      tokens: g.input(names.tokens, 'int64', [`GS_${m}`]),
      rows: g.input(names.rows, 'int64', [`GS_${m}`, 1]),
      rowValid: g.input(names.rowValid, 'bool', [`GS_${m}`, 1]),
      groups: g.input(names.groups, 'int64', [1]),
    });
  }
  const stackInputs = new Map<
    TargetModule,
    {
      active: string;
      blockTokens: string;
      blockMask: string;
    }
  >();
  for (const m of loraModules) {
    const names = loraStackNames(m);
    stackInputs.set(m, {
      active: g.input(names.active, 'bool', []),
      blockTokens: g.input(names.blockTokens, 'int64', [`G_${m}_stack`, `S_${m}_stack`, 1]),
      blockMask: g.input(names.blockMask, 'bool', [`G_${m}_stack`, `S_${m}_stack`, `M_${m}_stack`]),
    });
  }

  // Runtime dims, read once from the mask's shape [B, 1, 1, S, C].
  const maskShape = g.op('Shape', [mask]);
  const dimB = g.op('Slice', [maskShape, g.ints([0]), g.ints([1])]);
  const dimS = g.op('Slice', [maskShape, g.ints([3]), g.ints([4])]);
  const dimC = g.op('Slice', [maskShape, g.ints([4]), g.ints([5])]);
  const shape = (...parts: Array<string | number[]>) =>
    g.op(
      'Concat',
      parts.map((p) => (typeof p === 'string' ? p : g.ints(p))),
      { axis: 0 },
    );
  const shapeQ5 = shape(dimB, dimS, [kvH, group, hd]);
  const shapeKv4 = shape(dimB, dimS, [kvH, hd]);
  const shapeQ4 = shape(dimB, [kvH, -1, hd]);
  const shapeScores5 = shape(dimB, [kvH, group, -1], dimC);
  const shapeScores4 = shape(dimB, [kvH, -1], dimC);
  const shapeOut5 = shape(dimB, [kvH, group, -1, hd]);
  let zero: string | undefined;
  // RoPE (rotate-half, HF Llama's) by onnxruntime's RotaryEmbedding contrib op: the step's tokens
  // as one sequence whose position t reads row t of the per-token cos/sin (position offset 0), so
  // any mix of sequences and positions rotates right. One op where the split-multiply-concat form
  // took seven, twice per layer. Its output stays [1, T, heads·hd]: the padded-token Gather reads
  // it on axis 1, so no Reshape back is needed. The rotation is linear, so q's 1/√hd rides on
  // q's own cos/sin rows (scaled once a step), not on a Mul per layer.
  const cosRows = g.op('Reshape', [cos, g.ints([-1, hd / 2])]);
  const sinRows = g.op('Reshape', [sin, g.ints([-1, hd / 2])]);
  const attnScale = g.scalar(1 / Math.sqrt(hd));
  const cosRowsQ = g.op('Mul', [cosRows, attnScale]);
  const sinRowsQ = g.op('Mul', [sinRows, attnScale]);
  const ropeOffset = g.ints([0]);
  const rope = (x: string, heads: number, cosTable: string, sinTable: string): string =>
    g.op(
      'RotaryEmbedding',
      [g.op('Reshape', [x, g.ints([1, -1, heads * hd])]), ropeOffset, cosTable, sinTable],
      { interleaved: 0, num_heads: heads },
      { domain: 'com.microsoft' },
    );
  /** Rows of a [1, T, ·] value in padded-token order, [1, B·S, ·]. */
  const toPaddedRows = (rows: string) => g.op('Gather', [rows, paddedToken], { axis: 1 });

  const views = new Map<number, string>([[ps, pool]]);
  const poolView = (width: number): string => {
    let view = views.get(width);
    if (!view) {
      view = g.input(poolViewName(width, ps), 'float32', [`pool_rows_${width}`, width]);
      views.set(width, view);
    }
    return view;
  };
  const loraRows = (b: GraphBuilder, rowIds: string, layer: number, features: number): string => {
    const reads = loraRowReads(features, ps);
    const ids = b.op('Reshape', [b.op('Gather', [rowIds, b.ints([layer])], { axis: 0 }), b.ints([-1])]);
    const chunks = b.op('Gather', [poolView(reads.width), ids], { axis: 0 });
    const rows = b.op('Reshape', [chunks, b.ints([-1, reads.chunksPerRow * reads.width])]);
    if (!reads.slice) return rows;
    return b.op('Slice', [rows, b.ints([0]), b.ints([features]), b.ints([1])]);
  };

  /**
   * `then(b)` built into an If branch (inside `parent`) that runs only when `active` holds;
   * otherwise `unchanged` passes through. An If costs about what ~4 small ops do (~25 µs here),
   * and a module × layer's LoRA is 5 ops stacked and ~20 gathered, each a dispatch even on empty
   * tensors: a step without LoRA on a group of modules that share an input runs one If for them,
   * and one with LoRA but no gathered segments skips the segments' ops behind a second.
   */
  const onlyIf = (
    parent: GraphBuilder,
    active: string,
    unchanged: string[],
    then: (b: GraphBuilder) => string[],
  ): string[] =>
    parent.opMulti('If', [active], unchanged.length, {
      then_branch: {
        graph: parent.branch('then', (b) => then(b).map((value) => ({ value, type: 'float32' as const }))),
      },
      else_branch: {
        graph: parent.branch('else', (b) =>
          unchanged.map((value) => ({ value: b.op('Identity', [value]), type: 'float32' as const })),
        ),
      },
    });

  /** An If with both branches built: `then(b)` when `condition` holds, else `otherwise(b)`. */
  const parentIf = (
    parent: GraphBuilder,
    condition: string,
    outputs: string[],
    then: (b: GraphBuilder) => string[],
    otherwise: (b: GraphBuilder) => string[],
  ): string[] =>
    parent.opMulti('If', [condition], outputs.length, {
      then_branch: {
        graph: parent.branch('then', (b) => then(b).map((value) => ({ value, type: 'float32' as const }))),
      },
      else_branch: {
        graph: parent.branch('else', (b) =>
          otherwise(b).map((value) => ({ value, type: 'float32' as const })),
        ),
      },
    });

  /** Whether any module of a group has LoRA tokens / gathered segments this step (once per step, outside the branches). */
  const groupActive = new Map<string, string>();
  const anyActive = (flags: string[]): string => {
    const key = flags.join(',');
    let active = groupActive.get(key);
    if (!active) {
      active = flags.reduce((either, flag) => g.op('Or', [either, flag]));
      groupActive.set(key, active);
    }
    return active;
  };

  /** x·Wᵀ (+ LoRA) for modules that read the same x (q/k/v, gate/up). */
  const linears = (x: string, layer: number, modules: readonly TargetModule[]): string[] => {
    const outs =
      modules.length > 1 && weightMode === 'external' && isQuantized(weightFormat)
        ? fusedQuantizedLinear(
            g,
            x,
            modules.map((m) => WEIGHT_NAMES.linear(layer, m)),
            modules.map((m) => moduleShape(c, m).outFeatures),
            moduleShape(c, modules[0]).inFeatures,
            weightFormat,
            weightFiles,
          )
        : modules.map((m) => {
            const { inFeatures, outFeatures } = moduleShape(c, m);
            return gemm(x, WEIGHT_NAMES.linear(layer, m), outFeatures, inFeatures);
          });
    const adapted = modules.flatMap((m, i) => (lora.has(m) ? [i] : []));
    if (adapted.length === 0) return outs;
    /** The stacked tokens' LoRA added into `base` (the group's outputs). */
    const stacked = (b: GraphBuilder, base: string[]): string[] =>
      adapted.map((i, j) => stackedLora(b, x, layer, modules[i], base[j]));
    // The stacked ops are built into both branches of the segments' If: an If branch that only
    // passes its input on must copy it (an Identity), a group's outputs each step.
    const loraIn = (b: GraphBuilder): string[] =>
      parentIf(
        b,
        anyActive(adapted.map((i) => lora.get(modules[i])!.active)),
        adapted.map((i) => outs[i]),
        (bb) =>
          stacked(
            bb,
            adapted.map((i) => segments(bb, x, layer, modules[i], outs[i])),
          ),
        (bb) =>
          stacked(
            bb,
            adapted.map((i) => outs[i]),
          ),
      );
    const adaptedOuts = onlyIf(
      g,
      anyActive(adapted.map((i) => stackInputs.get(modules[i])!.active)),
      adapted.map((i) => outs[i]),
      loraIn,
    );
    adapted.forEach((i, j) => {
      outs[i] = adaptedOuts[j];
    });
    return outs;
  };
  const linear = (x: string, layer: number, m: TargetModule): string => linears(x, layer, [m])[0];

  // Sub-segments as batched matmuls: [G, Rc, in] · [G, in, Sg] → [G, Sg, Rc] · [G, Rc, out] (scaled Bᵀ),
  // then each valid row added into its token's output (a token may have several sub-segments).
  const segments = (b: GraphBuilder, x: string, layer: number, m: TargetModule, out: string): string => {
    const { inFeatures, outFeatures } = moduleShape(c, m);
    const inputs = lora.get(m)!;
    const perSegment = (rows: string, features: number) =>
      b.op('Reshape', [rows, b.op('Concat', [inputs.groups, b.ints([-1, features])], { axis: 0 })]);
    const a = perSegment(loraRows(b, inputs.aPages, layer, inFeatures), inFeatures);
    const bt = perSegment(loraRows(b, inputs.bPages, layer, outFeatures), outFeatures);
    const xs = perSegment(b.op('Gather', [x, inputs.tokens], { axis: 0 }), inFeatures);
    const shrunkT = b.op('MatMul', [a, b.op('Transpose', [xs], { perm: [0, 2, 1] })]);
    const expanded = b.op('MatMul', [b.op('Transpose', [shrunkT], { perm: [0, 2, 1] }), bt]);
    const flat = b.op('Reshape', [expanded, b.ints([-1, outFeatures])]);
    zero ??= g.scalar(0);
    const kept = b.op('Where', [inputs.rowValid, flat, zero]);
    return b.op('ScatterND', [out, inputs.rows, kept], { reduction: 'add' });
  };

  // Slotted tokens: x·Aᵀ over every stacked row, times each column's scale, other adapters'
  // columns dropped by selection (a poisoned adapter's NaN stays in its own columns), then ·Bᵀ,
  // added into the tokens' rows. Putting the stack on the MatMul's left, (A·xᵀ)ᵀ, gains nothing
  // (it profiled slower at batch 8), nor does storing A transposed, [G, in, R]: a scratch
  // benchmark of the shrink alone read it no faster.
  /**
   * Module m's stack inputs of one layer (declared once): the rows as [G, R, ·] blocks (the masked
   * shape's one block is [1, U, ·]). Each input costs every run its binding (~1 µs).
   */
  const declaredBlocks = new Map<string, ReturnType<typeof declareBlocks>>();
  const declareBlocks = (m: TargetModule, layer: number) => {
    const { inFeatures, outFeatures } = moduleShape(c, m);
    const names = loraStackNames(m);
    zero ??= g.scalar(0);
    return {
      aBlocks: g.input(names.aBlocks(layer), 'float32', [`G_${m}`, `R_${m}`, inFeatures]),
      btBlocks: g.input(names.btBlocks(layer), 'float32', [`G_${m}`, `R_${m}`, outFeatures]),
      zero,
    };
  };
  const stackBlocks = (m: TargetModule, layer: number) => {
    const key = `${m}/${layer}`;
    let blocks = declaredBlocks.get(key);
    if (!blocks) {
      blocks = declareBlocks(m, layer);
      declaredBlocks.set(key, blocks);
    }
    return blocks;
  };
  /** Each block's tokens against its R rows (loraStackNames' doc: blocked, or masked as one block). */
  const stackedLora = (b: GraphBuilder, x: string, layer: number, m: TargetModule, out: string): string => {
    const { aBlocks, btBlocks, zero } = stackBlocks(m, layer);
    const inputs = stackInputs.get(m)!;
    const xs = b.op('GatherND', [x, inputs.blockTokens]); // [G, S, in]
    // R on MLAS's column side, where its kernels fill vectors: [G, S, in]·[G, in, R]. No scale:
    // the Bᵀ rows carry it (writeScaledAdapterRows).
    const shrunk = b.op('MatMul', [xs, b.op('Transpose', [aBlocks], { perm: [0, 2, 1] })]); // [G, S, R]
    // Padding places and other adapters' columns are dropped on the rank side, R wide, not on the
    // expanded rows, out wide: their exact zeros times finite Bᵀ rows (lora-slot-stack.ts) add
    // exact zeros (a poisoned adapter's NaN stays in its own columns).
    const expanded = b.op('MatMul', [b.op('Where', [inputs.blockMask, shrunk, zero]), btBlocks]);
    return b.op('ScatterND', [out, inputs.blockTokens, expanded], { reduction: 'add' });
  };

  /** Layer `layer`'s past keys (kind 0) or values (1) gathered from the pool, [B, NB·tpp, kvH, hd]. */
  const pastKv = (layer: number, kind: 0 | 1): string => {
    // A rank-0 index drops the axis: [B, NB] page ids without a Squeeze.
    const pages = g.op(
      'Gather',
      [kvPages, g.constant({ type: 'int64', dims: [], data: BigInt64Array.of(BigInt(layer * 2 + kind)) })],
      { axis: 0 },
    );
    let rows = g.op('Gather', [pool, pages], { axis: 0 }); // [B, NB, ps]
    const used = kv.tokensPerPage * kv.kvDim;
    if (used !== ps) rows = g.op('Slice', [rows, g.ints([0]), g.ints([used]), g.ints([2])]);
    return g.op('Reshape', [rows, g.ints([0, -1, kvH, hd])]);
  };

  const embed = w(WEIGHT_NAMES.embedTokens, [c.vocabSize, c.hiddenSize]);
  // One decoder, whose groups of modules run their LoRA ops only in an If of their own. An If
  // over the whole decoder with a LoRA-free copy in its else branch spared base steps ~0.5 ms
  // (bench/onnx-step-overhead.ts, at widths where compute is negligible), but onnxruntime prepacks
  // each branch's Gemm weights on its own before keeping one copy: engine creation at the
  // TinyLlama shape peaked at 8.2 GB instead of 4.6 and took 8.2 s instead of 3.5.
  let x = g.op('Gather', [embed, ids], { axis: 0 }); // [T, hidden]
  const kvNew: string[] = [];
  for (let l = 0; l < L; l++) {
    const h = g.op('SimplifiedLayerNormalization', [x, w(WEIGHT_NAMES.inputNorm(l), [c.hiddenSize])], {
      axis: -1,
      epsilon: eps,
    });
    const [qProj, kProj, v] = linears(h, l, QKV);
    const q = rope(qProj, c.numHeads, cosRowsQ, sinRowsQ); // [1, T, qDim], scaled by 1/√hd
    const k = rope(kProj, kvH, cosRows, sinRows); // [1, T, kvDim]
    const vNew = g.op('Reshape', [v, g.ints([1, -1, kv.kvDim])]); // [1, T, kvDim]
    kvNew.push(k, vNew);

    const q5 = g.op('Transpose', [g.op('Reshape', [toPaddedRows(q), shapeQ5])], { perm: [0, 2, 3, 1, 4] });
    const qHeads = g.op('Reshape', [q5, shapeQ4]); // [B, kvH, group·S, hd]
    // Past and new rows joined in token order, then one Transpose each (not one per part).
    const kAll = g.op('Concat', [pastKv(l, 0), g.op('Reshape', [toPaddedRows(k), shapeKv4])], { axis: 1 });
    const kT = g.op('Transpose', [kAll], { perm: [0, 2, 3, 1] }); // [B, kvH, hd, C]
    const vRows = g.op('Reshape', [toPaddedRows(vNew), shapeKv4]);
    const vAll = g.op('Transpose', [g.op('Concat', [pastKv(l, 1), vRows], { axis: 1 })], {
      perm: [0, 2, 1, 3],
    }); // [B, kvH, C, hd]
    const scores = g.op('Add', [g.op('Reshape', [g.op('MatMul', [qHeads, kT]), shapeScores5]), mask]);
    const probs = g.op('Reshape', [g.op('Softmax', [scores], { axis: -1 }), shapeScores4]);
    const attn5 = g.op('Reshape', [g.op('MatMul', [probs, vAll]), shapeOut5]); // [B, kvH, group, S, hd]
    const attnPadded = g.op('Reshape', [
      g.op('Transpose', [attn5], { perm: [0, 3, 1, 2, 4] }),
      g.ints([-1, qDim]),
    ]);
    const attn = g.op('Gather', [attnPadded, tokenRow], { axis: 0 }); // [T, qDim]
    x = g.op('Add', [x, linear(attn, l, 'o_proj')]);

    const h2 = g.op(
      'SimplifiedLayerNormalization',
      [x, w(WEIGHT_NAMES.postAttentionNorm(l), [c.hiddenSize])],
      {
        axis: -1,
        epsilon: eps,
      },
    );
    const [gate, up] = linears(h2, l, GATE_UP);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    x = g.op('Add', [x, linear(act, l, 'down_proj')]);
  }
  g.op('Concat', kvNew, { axis: 0 }, { outputNames: [STEP_OUTPUTS.kvNew] });
  g.output(STEP_OUTPUTS.kvNew, 'float32', [2 * L, 'T', kv.kvDim]);

  const picked = g.op('Gather', [x, logitRows], { axis: 0 });
  const normed = g.op('SimplifiedLayerNormalization', [picked, w(WEIGHT_NAMES.finalNorm, [c.hiddenSize])], {
    axis: -1,
    epsilon: eps,
  });
  g.op(
    'Identity',
    [gemm(normed, WEIGHT_NAMES.lmHead, c.vocabSize, c.hiddenSize)],
    {},
    {
      outputNames: [STEP_OUTPUTS.logits],
    },
  );
  g.output(STEP_OUTPUTS.logits, 'float32', ['R', c.vocabSize]);
  return g.toBytes();
}
