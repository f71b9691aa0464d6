#!/usr/bin/env python3
"""The PyTorch side of `nerlab bench`: the same work on the same weights, batches and threads.

`nerlab bench ... --dump-batches work.json` writes the token ids and labels of every batch it
times (and the sentences of its latency test); this script runs exactly those through Hugging
Face's BertForTokenClassification and prints the same JSON keys:

  train: forward (with the cross-entropy loss) + backward + gradient clipping at 1.0 + AdamW
         (torch.optim.AdamW, lr 5e-5, weight decay 0.01 except on biases and LayerNorm, as nerlab
         groups them), per batch, dropout on (train mode) unless the work says it is off;
         the classifier starts from nerlab's initial head weights; per-step losses are printed;
  tag:   forward in inference mode + softmax + argmax per batch; then single-sentence latency.

The first `warmup` batches are run but not timed, as nerlab does. Peak memory is the process's
peak resident set (ru_maxrss), as nerlab reports VmHWM.

  ~/.cache/nerlab-py/bin/python bench/reference.py --model DIR --work work.json --threads 2
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForTokenClassification


def pad(rows, value):
    n = max(len(r) for r in rows)
    t = torch.full((len(rows), n), value, dtype=torch.long)
    m = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        m[i, : len(r)] = 1
    return t, m


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    pos = q / 100 * (len(sorted_values) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True, help="the JSON written by nerlab bench --dump-batches")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N (bf16 autocast there, as nerlab computes in bf16)")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"

    def sync():
        # CUDA work is asynchronous: time only what has finished.
        if gpu:
            torch.cuda.synchronize(device)

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if gpu else torch.autocast("cpu", enabled=False)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    work = json.load(open(args.work))
    model = AutoModelForTokenClassification.from_pretrained(args.model, num_labels=work["num_labels"])
    # Start from nerlab's head (its only randomly initialized part).
    with torch.no_grad():
        classifier = {"proj.weight": model.classifier.weight, "proj.bias": model.classifier.bias}
        for name, p in work.get("head", {}).items():
            if name not in classifier:
                raise SystemExit(f"reference.py runs the softmax head only; nerlab's head has {name}")
            target = classifier[name]
            target.copy_(torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"]))
    model.to(device)
    if not work.get("dropout", True):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    pad_id = model.config.pad_token_id or 0
    warmup = work["warmup"]
    sentences = tokens = 0
    elapsed = 0.0
    phases = [0.0, 0.0, 0.0]
    latency = None
    if work["task"] == "train":
        model.train()
        decay = lambda n: not (n.rsplit(".", 1)[-1].find("bias") >= 0 or "LayerNorm" in n or "layer_norm" in n)
        named = list(model.named_parameters())
        opt = torch.optim.AdamW(
            [{"params": [p for n, p in named if decay(n)], "weight_decay": work.get("weight_decay", 0.01)},
             {"params": [p for n, p in named if not decay(n)], "weight_decay": 0.0}],
            lr=work.get("lr", 5e-5),
        )
        losses = []
        for k, b in enumerate(work["batches"]):
            sync()
            start = time.perf_counter()
            ids, mask = pad(b["ids"], pad_id)
            labels, _ = pad(b["labels"], -100)
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            with autocast():
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            sync()
            t_forward = time.perf_counter()
            loss.backward()
            sync()
            t_backward = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            end = time.perf_counter()
            losses.append(loss.item())
            if k >= warmup:
                phases[0] += t_forward - start
                phases[1] += t_backward - t_forward
                phases[2] += end - t_backward
                elapsed += end - start
                sentences += len(b["ids"])
                tokens += sum(len(r) for r in b["ids"])
    else:
        model.eval()
        with torch.inference_mode():
            for k, b in enumerate(work["batches"]):
                sync()
                start = time.perf_counter()
                ids, mask = pad(b["ids"], pad_id)
                with autocast():
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                probs = logits.float().softmax(-1)
                _ = probs.max(-1)[1].cpu()
                end = time.perf_counter()
                if k >= warmup:
                    elapsed += end - start
                    sentences += len(b["ids"])
                    tokens += sum(len(r) for r in b["ids"])
            times = []
            for r in work["latency"]:
                sync()
                start = time.perf_counter()
                ids, mask = pad([r], pad_id)
                with autocast():
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                _ = logits.float().softmax(-1).max(-1)[1].cpu()
                times.append((time.perf_counter() - start) * 1e3)
            times.sort()
            latency = {"p50": percentile(times, 50), "p99": percentile(times, 99)}
    n = max(len(work["batches"]) - warmup, 1)
    out = {
        "model": args.model,
        "task": work["task"],
        "threads": args.threads,
        "device": args.device,
        "steps": len(work["batches"]) - warmup,
        "sentences_per_sec": sentences / max(elapsed, 1e-9),
        "tokens_per_sec": tokens / max(elapsed, 1e-9),
        "latency_ms": latency,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "torch": torch.__version__,
    }
    if work["task"] == "train":
        out["losses"] = losses
        out["phase_ms"] = {"forward": phases[0] * 1e3 / n, "backward": phases[1] * 1e3 / n, "optimizer": phases[2] * 1e3 / n}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
