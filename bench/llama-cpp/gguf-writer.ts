import { closeSync, openSync, writeSync } from 'node:fs';
import { toFloat16 } from '../../kernels/weight-quantization.js';
import type { LlamaConfig } from '../../model/llama-config.js';
import { moduleShape, type TargetModule } from '../../model/llama-modules.js';
import type { LoraAdapter, LoraPair } from '../../model/lora-adapter.js';
import type { ModelWeights } from '../../model/model-weights.js';

/**
 * Writes Loom's in-memory Llama weights as a GGUF v3 file that llama.cpp loads (for the side-by-
 * side benchmark only): llama architecture keys, a placeholder SentencePiece-style vocabulary of
 * the model's size (byte tokens included, as llama.cpp's tokenizer expects), and the tensors in
 * llama.cpp's names, f32 / f16 / q8_0. q and k rows are permuted from Hugging Face's half-split
 * RoPE layout to llama.cpp's interleaved one, as its own converter does.
 */
export type GgufWeightType = 'f32' | 'f16' | 'q8_0';

const GGML_TYPE = { f32: 0, f16: 1, q8_0: 8 } as const;
const FILE_TYPE = { f32: 0, f16: 1, q8_0: 7 } as const;
const ALIGNMENT = 32;

enum Kind {
  U32 = 4,
  I32 = 5,
  F32 = 6,
  STRING = 8,
  ARRAY = 9,
}

class Bytes {
  private chunks: Buffer[] = [];
  size = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface Tensor {
  name: string;
  /** ggml's ne: fastest-varying dimension first. */
  ne: number[];
  values: Float32Array;
  type: GgufWeightType;
}

function encode(t: Tensor): Buffer {
  if (t.type === 'f32') return Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
  if (t.type === 'f16') {
    const h = toFloat16(t.values);
    return Buffer.from(h.buffer, h.byteOffset, h.byteLength);
  }
  // q8_0: blocks of 32 along ne0, each an f16 scale then 32 int8 (llama.cpp's quantize_row_q8_0).
  const blocks = t.values.length / 32;
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(t.values[b * 32 + i]));
    scales[b] = amax / 127;
  }
  const scaleBits = toFloat16(scales);
  const out = Buffer.alloc(blocks * 34);
  const q = new Int8Array(out.buffer, out.byteOffset, out.length);
  for (let b = 0; b < blocks; b++) {
    out.writeUInt16LE(scaleBits[b], b * 34);
    const inv = scales[b] === 0 ? 0 : 1 / scales[b];
    for (let i = 0; i < 32; i++) q[b * 34 + 2 + i] = Math.round(t.values[b * 32 + i] * inv);
  }
  return out;
}

/** HF's [heads · headDim, in] q/k rows, reordered for llama.cpp's interleaved RoPE. */
function permuteRope(w: Float32Array, heads: number, inFeatures: number): Float32Array {
  const headDim = w.length / inFeatures / heads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (const part of [0, 1]) {
        const from = (h * headDim + part * half + i) * inFeatures;
        const to = (h * headDim + 2 * i + part) * inFeatures;
        out.set(w.subarray(from, from + inFeatures), to);
      }
  return out;
}

export function writeGguf(path: string, weights: ModelWeights, type: GgufWeightType): void {
  const c = weights.config;
  const tensors: Tensor[] = [];
  const linear = (name: string, values: Float32Array, inF: number, outF: number) =>
    tensors.push({ name, ne: [inF, outF], values, type });
  const norm = (name: string, values: Float32Array) =>
    tensors.push({ name, ne: [values.length], values, type: 'f32' });
  linear('token_embd.weight', weights.embedTokens, c.hiddenSize, c.vocabSize);
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  weights.layers.forEach((layer, i) => {
    const l = layer.linear;
    norm(`blk.${i}.attn_norm.weight`, layer.inputNorm);
    linear(`blk.${i}.attn_q.weight`, permuteRope(l.q_proj, c.numHeads, c.hiddenSize), c.hiddenSize, q);
    linear(`blk.${i}.attn_k.weight`, permuteRope(l.k_proj, c.numKvHeads, c.hiddenSize), c.hiddenSize, kv);
    linear(`blk.${i}.attn_v.weight`, l.v_proj, c.hiddenSize, kv);
    linear(`blk.${i}.attn_output.weight`, l.o_proj, q, c.hiddenSize);
    norm(`blk.${i}.ffn_norm.weight`, layer.postAttentionNorm);
    linear(`blk.${i}.ffn_gate.weight`, l.gate_proj, c.hiddenSize, c.intermediateSize);
    linear(`blk.${i}.ffn_up.weight`, l.up_proj, c.hiddenSize, c.intermediateSize);
    linear(`blk.${i}.ffn_down.weight`, l.down_proj, c.intermediateSize, c.hiddenSize);
  });
  norm('output_norm.weight', weights.finalNorm);
  linear('output.weight', weights.lmHead, c.hiddenSize, c.vocabSize);

  const { kvs, u32, f32, str, key } = keyWriters();
  str('general.architecture', 'llama');
  str('general.name', 'loom-synthetic');
  u32('general.alignment', ALIGNMENT);
  u32('general.file_type', FILE_TYPE[type]);
  u32('llama.context_length', c.maxPositionEmbeddings);
  u32('llama.embedding_length', c.hiddenSize);
  u32('llama.block_count', c.numLayers);
  u32('llama.feed_forward_length', c.intermediateSize);
  u32('llama.rope.dimension_count', c.headDim);
  u32('llama.attention.head_count', c.numHeads);
  u32('llama.attention.head_count_kv', c.numKvHeads);
  f32('llama.attention.layer_norm_rms_epsilon', c.rmsNormEps);
  f32('llama.rope.freq_base', c.ropeTheta);
  u32('llama.vocab_size', c.vocabSize);
  str('tokenizer.ggml.model', 'llama');
  const tokens: string[] = [];
  const types: number[] = [];
  // SentencePiece-style: <unk>, <s>, </s>, the 256 byte tokens llama.cpp's tokenizer looks up,
  // then placeholder pieces (token types: 1 normal, 2 unknown, 3 control, 6 byte).
  for (let i = 0; i < c.vocabSize; i++) {
    if (i < 3) {
      tokens.push(['<unk>', '<s>', '</s>'][i]);
      types.push(i === 0 ? 2 : 3);
    } else if (i < 3 + 256) {
      tokens.push(`<0x${(i - 3).toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    } else {
      tokens.push(`▁t${i}`);
      types.push(1);
    }
  }
  key('tokenizer.ggml.tokens', (b) => {
    b.u32(Kind.ARRAY);
    b.u32(Kind.STRING);
    b.u64(tokens.length);
    for (const t of tokens) b.str(t);
  });
  key('tokenizer.ggml.scores', (b) => {
    b.u32(Kind.ARRAY);
    b.u32(Kind.F32);
    b.u64(tokens.length);
    for (let i = 0; i < tokens.length; i++) b.f32(-i);
  });
  key('tokenizer.ggml.token_type', (b) => {
    b.u32(Kind.ARRAY);
    b.u32(Kind.I32);
    b.u64(types.length);
    for (const t of types) b.i32(t);
  });
  u32('tokenizer.ggml.unknown_token_id', 0);
  u32('tokenizer.ggml.bos_token_id', 1);
  u32('tokenizer.ggml.eos_token_id', 2);

  writeGgufFile(path, kvs, tensors);
}

/** GGUF metadata entries, written in the order they are added. */
function keyWriters() {
  const kvs: Array<(b: Bytes) => void> = [];
  const key = (name: string, write: (b: Bytes) => void) =>
    kvs.push((b) => {
      b.str(name);
      write(b);
    });
  const u32 = (name: string, v: number) =>
    key(name, (b) => {
      b.u32(Kind.U32);
      b.u32(v);
    });
  const f32 = (name: string, v: number) =>
    key(name, (b) => {
      b.u32(Kind.F32);
      b.f32(v);
    });
  const str = (name: string, v: string) =>
    key(name, (b) => {
      b.u32(Kind.STRING);
      b.str(v);
    });
  return { kvs, u32, f32, str, key };
}

/** The GGUF v3 container: header, metadata, tensor infos, then each tensor's data, aligned. */
function writeGgufFile(
  path: string,
  kvs: ReadonlyArray<(b: Bytes) => void>,
  tensors: readonly Tensor[],
): void {
  const header = new Bytes();
  header.push(Buffer.from('GGUF', 'latin1'));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(kvs.length);
  for (const write of kvs) write(header);
  const encoded = tensors.map(encode);
  let offset = 0;
  const offsets = encoded.map((e) => {
    const at = offset;
    offset += Math.ceil(e.length / ALIGNMENT) * ALIGNMENT;
    return at;
  });
  tensors.forEach((t, i) => {
    header.str(t.name);
    header.u32(t.ne.length);
    for (const n of t.ne) header.u64(n);
    header.u32(GGML_TYPE[t.type]);
    header.u64(offsets[i]);
  });
  const head = header.concat();
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.alloc(Math.ceil(head.length / ALIGNMENT) * ALIGNMENT - head.length));
    encoded.forEach((e) => {
      writeSync(fd, e);
      writeSync(fd, Buffer.alloc(Math.ceil(e.length / ALIGNMENT) * ALIGNMENT - e.length));
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * A PEFT-style LoRA adapter as a llama.cpp LoRA GGUF (what its convert_lora_to_gguf writes):
 * `blk.N.<tensor>.weight.lora_a` ne [in, r] and `.lora_b` ne [r, out], f32, with q/k B rows
 * permuted like the base weights; `adapter.lora.alpha` = scale × rank, so llama.cpp's alpha / rank
 * gives the adapter's own scale (uniform across its modules, as the bench's adapters are).
 */
export function writeLoraGguf(path: string, adapter: LoraAdapter, config: LlamaConfig): void {
  const names: Record<TargetModule, string> = {
    q_proj: 'attn_q',
    k_proj: 'attn_k',
    v_proj: 'attn_v',
    o_proj: 'attn_output',
    gate_proj: 'ffn_gate',
    up_proj: 'ffn_up',
    down_proj: 'ffn_down',
  };
  const tensors: Tensor[] = [];
  let scale: number | undefined;
  adapter.layers.forEach((layer, i) => {
    for (const [m, pair] of Object.entries(layer) as Array<[TargetModule, LoraPair]>) {
      if (scale !== undefined && pair.scale !== scale)
        throw new Error(`${adapter.name}: one scale per GGUF adapter`);
      scale = pair.scale;
      const { inFeatures, outFeatures } = moduleShape(config, m);
      const heads = m === 'q_proj' ? config.numHeads : m === 'k_proj' ? config.numKvHeads : 0;
      const b = heads ? permuteRope(pair.b, heads, pair.rank) : pair.b;
      tensors.push({
        name: `blk.${i}.${names[m]}.weight.lora_a`,
        ne: [inFeatures, pair.rank],
        values: pair.a,
        type: 'f32',
      });
      tensors.push({
        name: `blk.${i}.${names[m]}.weight.lora_b`,
        ne: [pair.rank, outFeatures],
        values: b,
        type: 'f32',
      });
    }
  });
  const { kvs, u32, f32, str } = keyWriters();
  str('general.architecture', 'llama');
  str('general.type', 'adapter');
  str('general.name', adapter.name);
  u32('general.alignment', ALIGNMENT);
  str('adapter.type', 'lora');
  f32('adapter.lora.alpha', (scale ?? 1) * adapter.rank);
  writeGgufFile(path, kvs, tensors);
}
