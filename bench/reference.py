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
         `--engine ort` runs the tag task in ONNX Runtime instead (fp32, the same weights exported
         with `torch.onnx.export` to `--onnx`, once; same threads, same batches).

`--dump-logits FILE` (tag) writes, after the timing, every unit's class scores and argmax in the
shape `nerlab bench --dump-logits` writes them, for `bench/compare.py` to compare.

The first `warmup` batches are run but not timed, as nerlab does. Peak memory is the process's
peak resident set (ru_maxrss), as nerlab reports VmHWM.

  ~/.cache/nerlab-py/bin/python bench/reference.py --model DIR --work work.json --threads 2
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoConfig, AutoModelForTokenClassification


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


def time_tagging(work, warmup, pad_id, forward, sync):
    """Times `forward(ids, mask) -> logits` (+ softmax and argmax) over the work's batches after
    the warm-up, then over its latency sentences one at a time."""
    sentences = tokens = 0
    elapsed = 0.0
    for k, b in enumerate(work["batches"]):
        sync()
        start = time.perf_counter()
        ids, mask = pad(b["ids"], pad_id)
        logits = torch.as_tensor(forward(ids, mask))
        _ = logits.softmax(-1).max(-1)[1]
        sync()
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
        logits = torch.as_tensor(forward(ids, mask))
        _ = logits.softmax(-1).max(-1)[1]
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return sentences, tokens, elapsed, {"p50": percentile(times, 50), "p99": percentile(times, 99)}


def dump_logits(path, work, warmup, pad_id, forward):
    """Every timed unit's class scores and argmax, as `nerlab bench --dump-logits` writes them."""
    out = []
    for b in work["batches"][warmup:]:
        ids, mask = pad(b["ids"], pad_id)
        logits = torch.as_tensor(forward(ids, mask))
        sentences = []
        for i, units in enumerate(b["units"]):
            rows = logits[i, units]
            sentences.append({"pred": rows.argmax(-1).tolist(), "scores": rows.tolist()})
        out.append(sentences)
    with open(path, "w") as f:
        json.dump({"batches": out}, f)


def ort_session(model, path, threads):
    """An ONNX Runtime session (fp32, all graph optimizations, `threads` intra-op threads, one
    inter-op) over `model` exported to `path`; exported first when the file is missing."""
    import onnxruntime as ort
    if not os.path.exists(path):
        model.eval()
        class Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).logits
        ids = torch.randint(5, 1000, (3, 11))
        mask = torch.ones_like(ids)
        mask[1, 7:] = 0
        b, s = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("seq", min=2, max=4096)
        torch.onnx.export(Logits(model).eval(), (ids, mask), path, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamo=True, external_data=False,
                          dynamic_shapes={"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}})
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run


def load_model(path, work, device):
    """The Hugging Face model with nerlab's initial head (its only randomly initialized part)."""
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=work["num_labels"])
    with torch.no_grad():
        classifier = {"proj.weight": model.classifier.weight, "proj.bias": model.classifier.bias}
        for name, p in work.get("head", {}).items():
            if name not in classifier:
                raise SystemExit(f"reference.py runs the softmax head only; nerlab's head has {name}")
            classifier[name].copy_(torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"]))
    model.to(device)
    if not work.get("dropout", True):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True, help="the JSON written by nerlab bench --dump-batches")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N (bf16 autocast there, as nerlab computes in bf16)")
    ap.add_argument("--engine", default="torch", choices=["torch", "ort"], help="ort: ONNX Runtime fp32 (tag task)")
    ap.add_argument("--onnx", help="the exported model for --engine ort (written here first when missing)")
    ap.add_argument("--dump-logits", help="tag task: every unit's class scores and argmax, as JSON")
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
    onnx = args.onnx or args.work + ".onnx"
    # ONNX Runtime alone, once the export exists: the timed process holds no PyTorch copy.
    model = None if args.engine == "ort" and os.path.exists(onnx) else load_model(args.model, work, device)
    pad_id = AutoConfig.from_pretrained(args.model).pad_token_id or 0
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
    elif args.engine == "ort":
        run = ort_session(model, onnx, args.threads)
        forward = lambda ids, mask: run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        sentences, tokens, elapsed, latency = time_tagging(work, warmup, pad_id, forward, sync)
    else:
        model.eval()

        def forward(ids, mask):
            with torch.inference_mode(), autocast():
                return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
        sentences, tokens, elapsed, latency = time_tagging(work, warmup, pad_id, forward, sync)
    if args.dump_logits and work["task"] == "tag":
        dump_logits(args.dump_logits, work, warmup, pad_id, forward)
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
