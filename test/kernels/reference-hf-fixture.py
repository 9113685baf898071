"""Writes reference-hf-fixture.json: a tiny Llama + PEFT LoRA adapter and the logits that
Hugging Face transformers would give for it, for reference-hf-parity.test.ts.

No torch on the team's machines, so the forward pass below is a line-by-line numpy
transcription of transformers' modeling_llama in f32 (LlamaRMSNorm, LlamaRotaryEmbedding with
`_compute_llama3_parameters`, apply_rotary_pos_emb / rotate_half, repeat_kv, eager attention,
LlamaMLP) and of PEFT's lora.Linear.forward (base(x) + lora_B(lora_A(x)) * scaling, unmerged).
It shares no code with kernels/reference/, which is the point.

Run from the repository root, then let biome format the JSON:
  python3 test/kernels/reference-hf-fixture.py && npx biome check --write test/kernels/reference-hf-fixture.json
"""
import base64
import json
import math
import os

import numpy as np

f32 = np.float32
# head_dim is given explicitly and heads · head_dim (32) ≠ hidden (16), as in Qwen3 or Gemma;
# 4 query heads on 2 KV heads tell repeat_kv's h // 2 apart from any other head mapping.
CONFIG = {
    'model_type': 'llama',
    'hidden_size': 16,
    'intermediate_size': 24,
    'num_attention_heads': 4,
    'num_key_value_heads': 2,
    'head_dim': 8,
    'num_hidden_layers': 2,
    'vocab_size': 24,
    'rms_norm_eps': 1e-5,
    'rope_theta': 10000.0,
    # head_dim 8 → inv_freq 1, 0.1, 0.01, 0.001: wavelengths 6.3 (kept), 63 (blended), 628 and
    # 6283 (divided by factor) with original 64: all three llama3 bands.
    'rope_scaling': {
        'rope_type': 'llama3',
        'factor': 8.0,
        'low_freq_factor': 1.0,
        'high_freq_factor': 4.0,
        'original_max_position_embeddings': 64,
    },
    'hidden_act': 'silu',
    'tie_word_embeddings': False,
}
ADAPTER_CONFIG = {
    'peft_type': 'LORA',
    'r': 3,
    'lora_alpha': 5,
    'use_rslora': True,
    'target_modules': ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'],
}
TOKENS = [3, 17, 0, 23, 9, 9, 4, 12]
MODULES = {
    'q_proj': 'self_attn', 'k_proj': 'self_attn', 'v_proj': 'self_attn', 'o_proj': 'self_attn',
    'gate_proj': 'mlp', 'up_proj': 'mlp', 'down_proj': 'mlp',
}

H = CONFIG['hidden_size']
NH = CONFIG['num_attention_heads']
NKV = CONFIG['num_key_value_heads']
HD = CONFIG['head_dim']
I = CONFIG['intermediate_size']
V = CONFIG['vocab_size']


def shapes(module):
    return {
        'q_proj': (NH * HD, H), 'k_proj': (NKV * HD, H), 'v_proj': (NKV * HD, H),
        'o_proj': (H, NH * HD), 'gate_proj': (I, H), 'up_proj': (I, H), 'down_proj': (H, I),
    }[module]


def make_weights(rng):
    w = {'model.embed_tokens.weight': rng.normal(0, 1, (V, H)), 'model.norm.weight': 1 + rng.normal(0, 0.1, H),
         'lm_head.weight': rng.normal(0, 2 / math.sqrt(H), (V, H))}
    for l in range(CONFIG['num_hidden_layers']):
        w[f'model.layers.{l}.input_layernorm.weight'] = 1 + rng.normal(0, 0.1, H)
        w[f'model.layers.{l}.post_attention_layernorm.weight'] = 1 + rng.normal(0, 0.1, H)
        for m, group in MODULES.items():
            out_f, in_f = shapes(m)
            w[f'model.layers.{l}.{group}.{m}.weight'] = rng.normal(0, 1 / math.sqrt(in_f), (out_f, in_f))
    return {k: v.astype(f32) for k, v in w.items()}


def make_adapter(rng):
    r = ADAPTER_CONFIG['r']
    a = {}
    for l in range(CONFIG['num_hidden_layers']):
        for m in ADAPTER_CONFIG['target_modules']:
            out_f, in_f = shapes(m)
            prefix = f'base_model.model.model.layers.{l}.{MODULES[m]}.{m}'
            a[prefix + '.lora_A.weight'] = rng.normal(0, 1 / math.sqrt(in_f), (r, in_f)).astype(f32)
            # PEFT initialises B to zero; a trained adapter's B is not, so neither is this one.
            a[prefix + '.lora_B.weight'] = rng.normal(0, 0.3, (out_f, r)).astype(f32)
    return a


def llama3_inv_freq():
    base = CONFIG['rope_theta']
    inv_freq = (1.0 / (f32(base) ** (np.arange(0, HD, 2, dtype=np.int64).astype(f32) / f32(HD)))).astype(f32)
    rs = CONFIG['rope_scaling']
    factor, low, high, old = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor'], rs['original_max_position_embeddings']
    low_freq_wavelen, high_freq_wavelen = old / low, old / high
    wavelen = (2 * math.pi / inv_freq).astype(f32)
    inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / f32(factor), inv_freq).astype(f32)
    smooth_factor = ((old / wavelen - low) / (high - low)).astype(f32)
    smoothed = ((1 - smooth_factor) * inv_freq_llama / f32(factor) + smooth_factor * inv_freq_llama).astype(f32)
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, inv_freq_llama).astype(f32)


def rms_norm(x, weight):
    variance = (x * x).mean(-1, keepdims=True, dtype=f32)
    return weight * (x * (1 / np.sqrt(variance + f32(CONFIG['rms_norm_eps']))).astype(f32))


def rotate_half(x):
    return np.concatenate((-x[..., HD // 2:], x[..., : HD // 2]), -1)


def forward(w, adapter, ids):
    r = ADAPTER_CONFIG['r']
    alpha = ADAPTER_CONFIG['lora_alpha']
    scaling = f32(alpha / math.sqrt(r) if ADAPTER_CONFIG['use_rslora'] else alpha / r)

    def linear(x, l, m):
        y = x @ w[f'model.layers.{l}.{MODULES[m]}.{m}.weight'].T
        prefix = f'base_model.model.model.layers.{l}.{MODULES[m]}.{m}'
        if adapter is not None and prefix + '.lora_A.weight' in adapter:
            y = y + (x @ adapter[prefix + '.lora_A.weight'].T) @ adapter[prefix + '.lora_B.weight'].T * scaling
        return y.astype(f32)

    n = len(ids)
    x = w['model.embed_tokens.weight'][ids]
    freqs = (np.arange(n, dtype=f32)[:, None] * llama3_inv_freq()[None, :]).astype(f32)
    emb = np.concatenate((freqs, freqs), -1)
    cos, sin = np.cos(emb).astype(f32), np.sin(emb).astype(f32)
    causal = np.triu(np.full((n, n), -np.inf, dtype=f32), 1)
    for l in range(CONFIG['num_hidden_layers']):
        h = rms_norm(x, w[f'model.layers.{l}.input_layernorm.weight'])
        q = linear(h, l, 'q_proj').reshape(n, NH, HD).transpose(1, 0, 2)
        k = linear(h, l, 'k_proj').reshape(n, NKV, HD).transpose(1, 0, 2)
        v = linear(h, l, 'v_proj').reshape(n, NKV, HD).transpose(1, 0, 2)
        q = (q * cos + rotate_half(q) * sin).astype(f32)
        k = (k * cos + rotate_half(k) * sin).astype(f32)
        k = np.repeat(k, NH // NKV, axis=0)  # repeat_kv: query head h reads KV head h // (NH/NKV)
        v = np.repeat(v, NH // NKV, axis=0)
        scores = (q @ k.transpose(0, 2, 1)) * f32(HD ** -0.5) + causal
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs = (probs / probs.sum(-1, keepdims=True)).astype(f32)
        attn = (probs @ v).transpose(1, 0, 2).reshape(n, NH * HD).astype(f32)
        x = x + linear(attn, l, 'o_proj')
        h = rms_norm(x, w[f'model.layers.{l}.post_attention_layernorm.weight'])
        gate, up = linear(h, l, 'gate_proj'), linear(h, l, 'up_proj')
        x = x + linear((gate / (1 + np.exp(-gate))).astype(f32) * up, l, 'down_proj')
    return (rms_norm(x, w['model.norm.weight']) @ w['lm_head.weight'].T).astype(f32)


def encode(a):
    return {'shape': list(a.shape), 'f32le': base64.b64encode(np.ascontiguousarray(a, dtype='<f4').tobytes()).decode()}


def main():
    rng = np.random.default_rng(20261123)
    weights = make_weights(rng)
    adapter = make_adapter(rng)
    fixture = {
        'about': 'Generated by reference-hf-fixture.py (numpy transcription of HF Llama + PEFT LoRA).',
        'config': CONFIG,
        'adapterConfig': ADAPTER_CONFIG,
        'tokens': TOKENS,
        'weights': {k: encode(v) for k, v in weights.items()},
        'adapter': {k: encode(v) for k, v in adapter.items()},
        'expected': {'base': encode(forward(weights, None, TOKENS)), 'lora': encode(forward(weights, adapter, TOKENS))},
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference-hf-fixture.json')
    with open(out, 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')


main()
