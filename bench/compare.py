#!/usr/bin/env python3
"""nerlab against PyTorch on the same work, side by side in one go; prints medians and ratios.

Each repeat runs `nerlab bench` (which also writes the exact batches it timed) and then
`bench/reference.py` on those batches, alternating which goes first, so both see the same machine
state. Ratios are nerlab / PyTorch for throughput (higher is better) and PyTorch / nerlab for
latency and memory (higher is better); every number is the median over the repeats.

  ~/.cache/nerlab-py/bin/python bench/compare.py --task train \\
      --model ~/.cache/ner-models/multilingual-e5-small \\
      --data ../shared/data/wikiann/xtreme-panx/dev-ko.tsv --batch-size 16 --threads 2 --steps 20 --repeats 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nerlab", default=os.environ.get("NERLAB", "target/release/nerlab"))
    ap.add_argument("--task", required=True, choices=["train", "tag"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bucket", default="false", help="length-bucketed batches (both sides get the same batches)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extra", default="", help="more nerlab bench flags")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N, for both sides")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = os.path.join(tempfile.mkdtemp(prefix="nerlab-compare-"), "work.json")
    nerlab_cmd = [
        args.nerlab, "bench", "--model", args.model, "--task", args.task, "--data", args.data,
        "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--steps", str(args.steps),
        "--bucket", args.bucket, "--device", args.device, "--json", "--dump-batches", work,
    ] + args.extra.split()
    ref_cmd = [sys.executable, os.path.join(HERE, "reference.py"), "--model", args.model, "--work", work,
               "--threads", str(args.threads), "--device", args.device]
    runs = {"nerlab": [], "pytorch": []}
    run_json(nerlab_cmd)  # writes the work file (and warms the page cache)
    for r in range(args.repeats):
        order = ["nerlab", "pytorch"] if r % 2 == 0 else ["pytorch", "nerlab"]
        for who in order:
            runs[who].append(run_json(nerlab_cmd if who == "nerlab" else ref_cmd))
            print(f"  repeat {r + 1} {who}: {runs[who][-1]['sentences_per_sec']:.2f} sentences/s", file=sys.stderr)

    def med(who, key, sub=None):
        vals = [(x[key][sub] if sub else x[key]) for x in runs[who] if x.get(key) is not None]
        return statistics.median(vals) if vals else None

    rows = [("sentences/s", "sentences_per_sec", None, True), ("tokens/s", "tokens_per_sec", None, True),
            ("peak RSS MiB", "peak_rss_bytes", None, False)]
    if args.task == "tag":
        rows += [("latency p50 ms", "latency_ms", "p50", False), ("latency p99 ms", "latency_ms", "p99", False)]
    else:
        rows += [(f"{p} ms/step", "phase_ms", p, False) for p in ("forward", "backward", "optimizer")]
    summary = {"task": args.task, "model": args.model, "data": args.data, "batch_size": args.batch_size,
               "threads": args.threads, "steps": args.steps, "repeats": args.repeats, "rows": {}}
    print(f"{args.task}, {os.path.basename(args.model.rstrip('/'))}, batch {args.batch_size}, {args.threads} threads, "
          f"median of {args.repeats}")
    print(f"{'':18}{'nerlab':>12}{'PyTorch':>12}{'ratio':>9}")
    for name, key, sub, higher_better in rows:
        a, b = med("nerlab", key, sub), med("pytorch", key, sub)
        if a is None or b is None:
            continue
        if key == "peak_rss_bytes":
            a, b = a / 2**20, b / 2**20
        ratio = (a / b) if higher_better else (b / a if a else float("inf"))
        summary["rows"][name] = {"nerlab": a, "pytorch": b, "ratio": ratio}
        print(f"{name:18}{a:12.2f}{b:12.2f}{ratio:8.2f}x")
    print("(ratio: nerlab's advantage; above 1 means nerlab is faster, quicker or smaller)")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
