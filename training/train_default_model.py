#!/usr/bin/python3
"""Trains Loom's embedded default model and its four demo adapters from Debian's public-domain text.

    apt-get install python3-torch bible-kjv fortunes fortunes-min dict-jargon dict-devil
    /usr/bin/python3 training/train_default_model.py            # writes model/default/

Deterministic for a given seed and thread count (torch on CPU, fixed step counts, no wall-clock
decisions). See training/README.md for what it writes and what it measured.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

THREADS_DEFAULT = 2
# OpenBLAS reads its thread count when torch loads it; it must be set before the import.
os.environ.setdefault('OPENBLAS_NUM_THREADS', str(THREADS_DEFAULT))
os.environ.setdefault('OMP_NUM_THREADS', str(THREADS_DEFAULT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
from llama import MODULES, Config, Lora, forward, init_weights, layer_key  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = 'loom-default'
VOCAB_SIZE = 4096
# Share of base-training windows drawn from each sub-corpus (the small ones are upweighted).
MIXTURE = {'bible': 0.4, 'fortunes': 0.2, 'jargon': 0.2, 'devil': 0.2}
# The demo adapters: one per sub-corpus, with different ranks and target modules.
ADAPTERS = [
    {'name': 'bible', 'r': 4, 'lora_alpha': 8, 'target_modules': ['q_proj', 'v_proj'], 'use_rslora': False},
    {'name': 'fortunes', 'r': 8, 'lora_alpha': 16, 'target_modules': ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
     'use_rslora': False},
    {'name': 'jargon', 'r': 16, 'lora_alpha': 32, 'target_modules': MODULES, 'use_rslora': False},
    {'name': 'devil', 'r': 32, 'lora_alpha': 16, 'target_modules': ['gate_proj', 'up_proj', 'down_proj'],
     'use_rslora': True},
]
GOLDEN_PROMPTS = ['The meaning of life is', 'And the LORD said unto Moses,', 'A hacker is']
GOLDEN_CHAT = [{'role': 'user', 'content': 'What is a computer?'}]
GOLDEN_COLUMN_STRIDE = 32
GOLDEN_GREEDY_TOKENS = 10
HELD_OUT_TEST_TOKENS = 256


def log(message):
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def chat_documents(name, docs, rng):
    """Chat-shaped copies of about a fifth of the documents, so the chat template's turns mean
    something. The user gives a verse's or a fortune's first words, or a dictionary headword; the
    assistant answers with the verse, the whole fortune or Devil's Dictionary entry, or the Jargon
    File entry's first line (headword, pronunciation, part of speech)."""
    chats = []
    for doc in docs:
        if rng.random() >= 0.2:
            continue
        lines = doc.split('\n')
        passage = rng.choice(lines[1:]) if name == 'bible' and len(lines) > 1 else lines[0]
        words = passage.split()
        if len(words) < 3:
            continue
        if name in ('jargon', 'devil'):
            cue = passage.split(',')[0].split(' /')[0] if name == 'devil' else doc.split(' ')[0]
        else:
            cue = ' '.join(words[:rng.randint(2, 5)])
        answer = doc if name in ('fortunes', 'devil') else passage
        chats.append(bpe.render_chat([{'role': 'user', 'content': cue}, {'role': 'assistant', 'content': answer}],
                                     add_generation_prompt=False))
    return chats


def document_ids(tokenizer, doc):
    """A plain document is BOS + text + EOS; a chat document already holds its special tokens."""
    if doc.startswith(bpe.BOS):
        return tokenizer.encode(doc)
    return [tokenizer.bos_id] + tokenizer.encode(doc) + [tokenizer.eos_id]


def token_stream(tokenizer, docs, rng):
    order = list(docs)
    rng.shuffle(order)
    ids = []
    for doc in order:
        ids.extend(document_ids(tokenizer, doc))
    return np.array(ids, dtype=np.int64)


def sample_batch(streams, weights, batch, seq_len, rng):
    names = rng.choices(list(weights), weights=list(weights.values()), k=batch)
    rows = []
    for name in names:
        stream = streams[name]
        start = rng.randrange(0, len(stream) - seq_len - 1)
        rows.append(stream[start:start + seq_len + 1])
    data = torch.from_numpy(np.stack(rows))
    return data[:, :-1], data[:, 1:]


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config, weights, params, streams, mixture, steps, peak_lr, args, rng, label, lora=None, decay=()):
    decayed = [p for p in params if any(p is d for d in decay)]
    others = [p for p in params if not any(p is d for d in decay)]
    groups = [{'params': others, 'weight_decay': 0.0}]
    if decayed:
        groups.append({'params': decayed, 'weight_decay': 0.1})
    optimizer = torch.optim.AdamW(groups, lr=peak_lr, betas=(0.9, 0.95))
    started = time.time()
    smoothed = None
    for step in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(step, steps, peak_lr, warmup=max(1, steps // 20))
        inputs, targets = sample_batch(streams, mixture, args.batch, args.seq_len, rng)
        logits = forward(config, weights, inputs, lora)
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % 25 == 0 or step == steps - 1:
            rate = (step + 1) * args.batch * args.seq_len / (time.time() - started)
            log(f'{label} step {step + 1}/{steps} loss {loss.item():.3f} (smoothed {smoothed:.3f}), {rate:.0f} tokens/s')
    return {'steps': steps, 'final_loss_smoothed': round(smoothed, 4), 'seconds': round(time.time() - started, 1),
            'tokens': steps * args.batch * args.seq_len}


@torch.no_grad()
def held_out_loss(config, weights, stream, seq_len, windows, lora=None):
    """Mean next-token cross-entropy over the first `windows` non-overlapping windows."""
    total, count = 0.0, 0
    for w in range(min(windows, (len(stream) - 1) // seq_len)):
        chunk = torch.from_numpy(stream[w * seq_len:(w + 1) * seq_len + 1])[None]
        logits = forward(config, weights, chunk[:, :-1], lora)
        total += F.cross_entropy(logits[0], chunk[0, 1:], reduction='sum').item()
        count += seq_len
    return total / count


def rounded_f16(tensor):
    return tensor.detach().to(torch.float16).to(torch.float32)


@torch.no_grad()
def golden_for(config, weights, ids, lora):
    logits = forward(config, weights, torch.tensor([ids]), lora)[0]
    columns = list(range(0, config.vocab_size, GOLDEN_COLUMN_STRIDE))
    greedy, margins, seq = [], [], list(ids)
    for _ in range(GOLDEN_GREEDY_TOKENS):
        last = forward(config, weights, torch.tensor([seq]), lora)[0, -1]
        top = torch.topk(last, 2)
        greedy.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        seq.append(greedy[-1])
    return {
        'logits': [[float(f'{v:.9g}') for v in row[columns].tolist()] for row in logits],
        'argmax': logits.argmax(-1).tolist(),
        'greedy': greedy,
        'min_greedy_margin': round(min(margins), 6),
    }


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(REPO, 'model', 'default'))
    parser.add_argument('--seed', type=int, default=1234)
    parser.add_argument('--threads', type=int, default=THREADS_DEFAULT)
    parser.add_argument('--base-steps', type=int, default=600)
    parser.add_argument('--adapter-steps', type=int, default=60)
    parser.add_argument('--base-lr', type=float, default=3e-3)
    parser.add_argument('--adapter-lr', type=float, default=5e-3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--seq-len', type=int, default=256)
    parser.add_argument('--eval-windows', type=int, default=3)
    parser.add_argument('--export-corpus', metavar='JSON', help='write the documents read from Debian\'s packages, then stop')
    parser.add_argument('--corpus', metavar='JSON', help='read the documents from a file --export-corpus wrote')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)
    started = time.time()

    if args.corpus:
        with open(args.corpus, encoding='utf-8') as f:
            corpora = json.load(f)
    else:
        corpora = corpus.load_corpora()
    if args.export_corpus:
        bpe.write_json(args.export_corpus, corpora)
        return
    train_docs, held_docs = {}, {}
    for name, docs in corpora.items():
        train_docs[name], held_docs[name] = corpus.split_held_out(docs)
        train_docs[name] += chat_documents(name, train_docs[name], rng)
        log(f'{name}: {len(train_docs[name])} training documents, {len(held_docs[name])} held out')

    merges = bpe.train_bpe([d for docs in train_docs.values() for d in docs], VOCAB_SIZE)
    tokenizer = bpe.Tokenizer(merges)
    log(f'tokenizer: {len(tokenizer.vocab)} tokens')
    streams = {name: token_stream(tokenizer, docs, rng) for name, docs in train_docs.items()}
    held_streams = {name: token_stream(tokenizer, docs, random.Random(0)) for name, docs in held_docs.items()}
    for name in streams:
        log(f'{name}: {len(streams[name])} training tokens, {len(held_streams[name])} held-out tokens')

    config = Config(vocab_size=VOCAB_SIZE, hidden_size=192, num_layers=4, num_heads=4, num_kv_heads=2,
                    intermediate_size=512, max_position_embeddings=2048,
                    bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id)
    weights = {k: v.requires_grad_() for k, v in init_weights(config, generator).items()}
    num_params = sum(v.numel() for v in weights.values())
    log(f'model: {num_params} parameters')
    matrices = [v for k, v in weights.items() if v.dim() == 2]
    report = {'seed': args.seed, 'threads': args.threads, 'batch': args.batch, 'seq_len': args.seq_len,
              'base_lr': args.base_lr, 'adapter_lr': args.adapter_lr,
              'parameters': num_params, 'vocab_size': VOCAB_SIZE,
              'training_tokens': {n: int(len(s)) for n, s in streams.items()},
              'held_out_tokens': {n: int(len(s)) for n, s in held_streams.items()}}
    report['base'] = train(config, weights, list(weights.values()), streams, MIXTURE, args.base_steps, args.base_lr,
                           args, rng, 'base', decay=matrices)
    weights = {k: rounded_f16(v) for k, v in weights.items()}

    adapters = {}
    for spec in ADAPTERS:
        lora = Lora(spec['r'], spec['lora_alpha'], spec['target_modules'], spec['use_rslora'], config, generator)
        report[spec['name']] = train(config, weights, lora.parameters(), streams, {spec['name']: 1.0},
                                     args.adapter_steps, args.adapter_lr, args, rng, spec['name'], lora=lora)
        lora.pairs = {key: (rounded_f16(a), rounded_f16(b)) for key, (a, b) in lora.pairs.items()}
        adapters[spec['name']] = lora

    models = {'base': None, **adapters}
    report['held_out_loss'] = {
        model: {name: round(held_out_loss(config, weights, held_streams[name], args.seq_len, args.eval_windows, lora), 4)
                for name in held_streams}
        for model, lora in models.items()}
    log(f'held-out loss (row: model, column: text): {json.dumps(report["held_out_loss"])}')

    out = args.out
    model_dir = os.path.join(out, MODEL_NAME)
    os.makedirs(model_dir, exist_ok=True)
    write_safetensors(os.path.join(model_dir, 'model.safetensors'), weights, 'F16')
    bpe.write_json(os.path.join(model_dir, 'config.json'), config.config_json())
    bpe.write_json(os.path.join(model_dir, 'generation_config.json'),
                   {'bos_token_id': tokenizer.bos_id, 'eos_token_id': tokenizer.eos_id, 'do_sample': False})
    bpe.write_json(os.path.join(model_dir, 'tokenizer.json'), tokenizer.tokenizer_json())
    bpe.write_json(os.path.join(model_dir, 'tokenizer_config.json'), bpe.tokenizer_config_json())
    for spec in ADAPTERS:
        lora = adapters[spec['name']]
        adapter_dir = os.path.join(out, 'adapters', spec['name'])
        os.makedirs(adapter_dir, exist_ok=True)
        tensors = {}
        for (layer, module), (a, b) in lora.pairs.items():
            prefix = f'base_model.model.{layer_key(layer, module)}'
            tensors[f'{prefix}.lora_A.weight'] = a
            tensors[f'{prefix}.lora_B.weight'] = b
        write_safetensors(os.path.join(adapter_dir, 'adapter_model.safetensors'), tensors, 'F16')
        bpe.write_json(os.path.join(adapter_dir, 'adapter_config.json'), peft_config(spec))

    golden = {'column_stride': GOLDEN_COLUMN_STRIDE, 'prompts': [], 'held_out': {}}
    chat_text = bpe.render_chat(GOLDEN_CHAT, add_generation_prompt=True)
    prompts = [(p, 'completion', [tokenizer.bos_id] + tokenizer.encode(p)) for p in GOLDEN_PROMPTS]
    prompts.append((GOLDEN_CHAT, 'chat', tokenizer.encode(chat_text)))
    for prompt, kind, ids in prompts:
        golden['prompts'].append({'kind': kind, 'prompt': prompt, 'ids': ids,
                                  'models': {m: golden_for(config, weights, ids, lora) for m, lora in models.items()}})
    for name, docs in held_docs.items():
        ids = []
        for doc in docs:
            ids.extend(document_ids(tokenizer, doc))
            if len(ids) >= HELD_OUT_TEST_TOKENS:
                break
        ids = ids[:HELD_OUT_TEST_TOKENS]
        with torch.no_grad():
            losses = {}
            for m, lora in models.items():
                logits = forward(config, weights, torch.tensor([ids]), lora)[0]
                losses[m] = round(F.cross_entropy(logits[:-1], torch.tensor(ids[1:])).item(), 6)
        golden['held_out'][name] = {'text': tokenizer.decode(ids), 'ids': ids, 'loss': losses}
    bpe.write_json(os.path.join(out, 'golden.json'), golden)
    for p in golden['prompts']:
        for m, g in p['models'].items():
            log(f'{m} | {p["prompt"] if p["kind"] == "completion" else "chat"} | {tokenizer.decode(g["greedy"])!r}')

    report['total_seconds'] = round(time.time() - started, 1)
    report['torch'] = torch.__version__
    bpe.write_json(os.path.join(out, 'training-report.json'), report)
    write_checksums(out)
    log(f'done in {report["total_seconds"]} s')


def peft_config(spec):
    """adapter_config.json with the fields PEFT 0.13's LoraConfig writes."""
    return {
        'alpha_pattern': {}, 'auto_mapping': None, 'base_model_name_or_path': MODEL_NAME, 'bias': 'none',
        'fan_in_fan_out': False, 'inference_mode': True, 'init_lora_weights': True,
        'layer_replication': None, 'layers_pattern': None, 'layers_to_transform': None,
        'loftq_config': {}, 'lora_alpha': spec['lora_alpha'], 'lora_dropout': 0.0, 'megatron_config': None,
        'megatron_core': 'megatron.core', 'modules_to_save': None, 'peft_type': 'LORA', 'r': spec['r'],
        'rank_pattern': {}, 'revision': None, 'target_modules': sorted(spec['target_modules']),
        'task_type': 'CAUSAL_LM', 'use_dora': False, 'use_rslora': spec['use_rslora'],
    }


def write_checksums(out):
    """SHA256SUMS over every file Loom loads (sha256sum's format), which Loom checks at start."""
    lines = []
    for root, _, files in os.walk(out):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, out)
            if rel == 'SHA256SUMS':
                continue
            lines.append(f'{sha256_of(path)}  {rel}')
    with open(os.path.join(out, 'SHA256SUMS'), 'w') as f:
        f.write('\n'.join(sorted(lines, key=lambda line: line[66:])) + '\n')


if __name__ == '__main__':
    main()
