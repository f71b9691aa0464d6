#!/usr/bin/env python3
"""Hugging Face's token-classification recipe (transformers' examples/pytorch/token-classification
run_ner.py with Trainer defaults), as a plain PyTorch loop, for comparison with `nerlab train`.

The recipe: words tokenized with is_split_into_words=True, truncation at --max-length, the label on
each word's first subword (-100 elsewhere); BertForTokenClassification (dropout 0.1); AdamW
(torch.optim.AdamW, betas 0.9/0.999, eps 1e-8, weight decay --weight-decay, none on biases and
LayerNorm), a linear schedule with --warmup-ratio, gradient clipping at 1.0, a seeded random
sampler, batches padded to their longest input. Dev predictions are taken at each word's first
subword and scored with seqeval, strict IOB2 (as nerlab scores) and default mode.

  ~/.cache/nerlab-py/bin/python scripts/hf_token_classification.py \
      --train /tmp/wikiann-ko-2000.tsv --dev ../shared/data/wikiann/xtreme-panx/dev-ko.tsv \
      --model ~/.cache/ner-models/multilingual-e5-small --seed 1 --threads 2 --out result.json
"""
import argparse
import json
import math
import random
import time

import numpy as np
import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from transformers import BertForTokenClassification, PreTrainedTokenizerFast


def read(path):
    sents, toks, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip():
            if toks:
                sents.append((toks, tags))
                toks, tags = [], []
            continue
        t, g = line.split("\t")
        toks.append(t)
        tags.append(g)
    if toks:
        sents.append((toks, tags))
    return sents


def encode(tok, words, labels, label2id, max_length):
    enc = tok(words, is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = enc.word_ids()
    out, prev = [], None
    for w in word_ids:
        if w is None or w == prev:
            out.append(-100)
        else:
            out.append(label2id[labels[w]] if labels is not None else 0)
        prev = w
    return enc["input_ids"], out, word_ids


def collate(batch, pad_id):
    n = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        labels[i, : len(y)] = torch.tensor(y)
    return ids, mask, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)

    train, dev = read(a.train), read(a.dev)
    labels = sorted({t for _, tags in train for t in tags}, key=lambda t: (t != "O", t[2:], t))
    label2id = {l: i for i, l in enumerate(labels)}
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{a.model}/tokenizer.json")
    pad_id = tok.convert_tokens_to_ids("<pad>") if tok.convert_tokens_to_ids("<pad>") is not None else 0
    model = BertForTokenClassification.from_pretrained(a.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    model.train()

    data = [encode(tok, w, t, label2id, a.max_length)[:2] for w, t in train]
    steps_per_epoch = math.ceil(len(data) / a.batch_size)
    total = steps_per_epoch * a.epochs
    warmup = math.ceil(total * a.warmup_ratio)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": a.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    g = torch.Generator().manual_seed(a.seed)
    start = time.time()
    step = 0
    for epoch in range(a.epochs):
        order = torch.randperm(len(data), generator=g).tolist()
        for b in range(0, len(order), a.batch_size):
            ids, mask, y = collate([data[i] for i in order[b : b + a.batch_size]], pad_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 25 == 0:
                print(f"step {step}/{total} loss {loss.item():.4f}", flush=True)
    train_secs = time.time() - start

    model.eval()
    start = time.time()
    gold, pred = [], []
    with torch.no_grad():
        for b in range(0, len(dev), 64):
            chunk = dev[b : b + 64]
            enc = [encode(tok, w, None, label2id, a.max_length) for w, _ in chunk]
            ids, mask, _ = collate([(x, y) for x, y, _ in enc], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            for k, ((words, tags), (_, _, word_ids)) in enumerate(zip(chunk, enc)):
                p = ["O"] * len(words)
                seen = set()
                for pos, w in enumerate(word_ids):
                    if w is not None and w not in seen:
                        seen.add(w)
                        p[w] = labels[logits[k, pos].item()]
                gold.append(tags)
                pred.append(p)
    result = {
        "seed": a.seed,
        "train_sentences": len(train),
        "dev_sentences": len(dev),
        "steps": step,
        "f1_strict": f1_score(gold, pred, mode="strict", scheme=IOB2),
        "precision_strict": precision_score(gold, pred, mode="strict", scheme=IOB2),
        "recall_strict": recall_score(gold, pred, mode="strict", scheme=IOB2),
        "f1_default": f1_score(gold, pred),
        "train_secs": train_secs,
        "eval_secs": time.time() - start,
        "torch": torch.__version__,
    }
    json.dump(result, open(a.out, "w"), indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
