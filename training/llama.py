"""LlamaForCausalLM's forward pass, written out in torch the way transformers computes it in f32.

RMSNorm normalises in f32 (x · rsqrt(mean(x²) + eps)) then multiplies by its weight; RoPE uses
rotate_half (element i pairs with i + head_dim/2) with inv_freq = 1 / theta^(2i/head_dim) and the
angle position · inv_freq rounded to f32; attention is grouped-query (each key/value head serves
num_heads / num_kv_heads query heads) with a causal mask and softmax in f32; the MLP is
down(silu(gate(x)) · up(x)). A LoRA pair adds scale · B(A x) to its module's output, as PEFT's
LoraLayer does (scale = alpha / r, or alpha / √r with use_rslora).
"""

import math

import torch
import torch.nn.functional as F

MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
ATTENTION = {'q_proj', 'k_proj', 'v_proj', 'o_proj'}


class Config:
    def __init__(self, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size,
                 max_position_embeddings, rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=0,
                 eos_token_id=1):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = hidden_size // num_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    def module_shape(self, module):
        """[out, in] of a linear module, HF's layout."""
        h, kv, i = self.hidden_size, self.num_kv_heads * self.head_dim, self.intermediate_size
        return {'q_proj': (h, h), 'k_proj': (kv, h), 'v_proj': (kv, h), 'o_proj': (h, h),
                'gate_proj': (i, h), 'up_proj': (i, h), 'down_proj': (h, i)}[module]

    def config_json(self):
        return {
            'architectures': ['LlamaForCausalLM'],
            'model_type': 'llama',
            'hidden_size': self.hidden_size,
            'intermediate_size': self.intermediate_size,
            'num_attention_heads': self.num_heads,
            'num_hidden_layers': self.num_layers,
            'num_key_value_heads': self.num_kv_heads,
            'head_dim': self.head_dim,
            'vocab_size': self.vocab_size,
            'max_position_embeddings': self.max_position_embeddings,
            'hidden_act': 'silu',
            'rms_norm_eps': self.rms_norm_eps,
            'rope_theta': self.rope_theta,
            'rope_scaling': None,
            'tie_word_embeddings': True,
            'attention_bias': False,
            'mlp_bias': False,
            'initializer_range': 0.02,
            'bos_token_id': self.bos_token_id,
            'eos_token_id': self.eos_token_id,
            'torch_dtype': 'float16',
        }


def layer_key(layer, module):
    group = 'self_attn' if module in ATTENTION else 'mlp'
    return f'model.layers.{layer}.{group}.{module}'


def init_weights(config, generator):
    """HF's init (normal, std 0.02; norms 1), with the residual outputs (o, down) scaled by
    1/√(2·layers) as GPT-2 does, which trains a small model faster from scratch."""
    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=generator) * std

    residual_std = 0.02 / math.sqrt(2 * config.num_layers)
    weights = {'model.embed_tokens.weight': normal(config.vocab_size, config.hidden_size)}
    for layer in range(config.num_layers):
        weights[f'model.layers.{layer}.input_layernorm.weight'] = torch.ones(config.hidden_size)
        weights[f'model.layers.{layer}.post_attention_layernorm.weight'] = torch.ones(config.hidden_size)
        for module in MODULES:
            std = residual_std if module in ('o_proj', 'down_proj') else 0.02
            weights[f'{layer_key(layer, module)}.weight'] = normal(*config.module_shape(module), std=std)
    weights['model.norm.weight'] = torch.ones(config.hidden_size)
    return weights


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rope_tables(config, length):
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Lora:
    """One adapter: (layer, module) → (A [r, in], B [out, r]) and its scale."""

    def __init__(self, rank, alpha, target_modules, use_rslora, config, generator):
        self.rank = rank
        self.alpha = alpha
        self.target_modules = target_modules
        self.use_rslora = use_rslora
        self.scale = alpha / math.sqrt(rank) if use_rslora else alpha / rank
        self.pairs = {}
        for layer in range(config.num_layers):
            for module in target_modules:
                out_dim, in_dim = config.module_shape(module)
                # PEFT's default init: A Kaiming-uniform (a = √5, i.e. bound 1/√in), B zero.
                bound = 1 / math.sqrt(in_dim)
                a = (torch.rand(rank, in_dim, generator=generator) * 2 - 1) * bound
                self.pairs[(layer, module)] = (a.requires_grad_(), torch.zeros(out_dim, rank, requires_grad=True))

    def parameters(self):
        return [t for pair in self.pairs.values() for t in pair]


def forward(config, weights, ids, lora=None):
    """Logits [batch, length, vocab] (f32) for token ids [batch, length], positions 0…length−1."""
    batch, length = ids.shape
    cos, sin = rope_tables(config, length)
    mask = torch.full((length, length), float('-inf')).triu(1)
    groups = config.num_heads // config.num_kv_heads

    def linear(x, layer, module):
        y = x @ weights[f'{layer_key(layer, module)}.weight'].T
        if lora is not None and (layer, module) in lora.pairs:
            a, b = lora.pairs[(layer, module)]
            y = y + ((x @ a.T) @ b.T) * lora.scale
        return y

    h = weights['model.embed_tokens.weight'][ids]
    for layer in range(config.num_layers):
        x = rms_norm(h, weights[f'model.layers.{layer}.input_layernorm.weight'], config.rms_norm_eps)
        q = linear(x, layer, 'q_proj').view(batch, length, config.num_heads, config.head_dim).transpose(1, 2)
        k = linear(x, layer, 'k_proj').view(batch, length, config.num_kv_heads, config.head_dim).transpose(1, 2)
        v = linear(x, layer, 'v_proj').view(batch, length, config.num_kv_heads, config.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(config.head_dim) + mask
        attended = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, length, -1)
        h = h + linear(attended, layer, 'o_proj')
        x = rms_norm(h, weights[f'model.layers.{layer}.post_attention_layernorm.weight'], config.rms_norm_eps)
        h = h + linear(F.silu(linear(x, layer, 'gate_proj')) * linear(x, layer, 'up_proj'), layer, 'down_proj')
    h = rms_norm(h, weights['model.norm.weight'], config.rms_norm_eps)
    return h @ weights['model.embed_tokens.weight'].T
