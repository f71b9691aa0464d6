#!/usr/bin/env python3
"""nerlab against PyTorch and ONNX Runtime on the same work, side by side in one go; prints
medians, ratios and how far the engines' answers differ.

`nerlab bench` writes the exact batches it times (length-sorted by default, `--bucket false` for
random ones); `bench/reference.py` replays them in PyTorch and, for tagging, in ONNX Runtime (fp32,
exported from the same weights). Each repeat runs every engine once, a different one first each
time, so all see the same machine state. For tagging, every engine's class scores on the timed
batches are compared with nerlab's (argmax agreement, largest difference), so speed is never
bought with different answers. Ratios are nerlab / PyTorch for throughput (higher is better) and PyTorch / nerlab for
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


def cpu_times():
    """(steal, total) jiffies of the whole machine, from /proc/stat (None where unreadable)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def run_json(cmd):
    """Runs one engine; its JSON, with the share of the machine's CPU time the hypervisor stole
    meanwhile (`steal`): on a shared virtual machine a run with much steal measured the neighbours."""
    before = cpu_times()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = cpu_times()
    result = json.loads(out.strip().splitlines()[-1])
    if before and after and after[1] > before[1]:
        result["steal"] = (after[0] - before[0]) / (after[1] - before[1])
    return result


def agreement(a, b):
    """Argmax agreement and the largest class-score difference between two --dump-logits files."""
    same = total = 0
    worst = 0.0
    for ba, bb in zip(a["batches"], b["batches"], strict=True):
        for sa, sb in zip(ba, bb, strict=True):
            for pa, pb, ra, rb in zip(sa["pred"], sb["pred"], sa["scores"], sb["scores"], strict=True):
                total += 1
                same += pa == pb
                worst = max(worst, max(abs(x - y) for x, y in zip(ra, rb, strict=True)))
    return same / max(total, 1), worst, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nerlab", default=os.environ.get("NERLAB", "target/release/nerlab"))
    ap.add_argument("--task", required=True, choices=["train", "tag"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bucket", default="true",
                    help="length-sorted batches, the way a careful user runs inference (true), or random ones (false); "
                         "every engine gets the same batches")
    ap.add_argument("--engines", default=None,
                    help="comma-separated: nerlab, then any of nerlab-int8 (nerlab bench --int8; tag only), "
                         "nerlab-serial (nerlab bench --lanes 1: one batch after another on every thread, "
                         "the tagging path before batches ran in lanes; tag only), "
                         "pytorch, ort (ONNX Runtime fp32; tag only). "
                         "Default: nerlab,pytorch,ort for tag, nerlab,pytorch for train")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extra", default="", help="more nerlab bench flags")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N, for nerlab and PyTorch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    engines = (args.engines or ("nerlab,pytorch,ort" if args.task == "tag" else "nerlab,pytorch")).split(",")
    if engines[0] != "nerlab" or not set(engines) <= {"nerlab", "nerlab-int8", "nerlab-serial", "pytorch", "ort"}:
        raise SystemExit("--engines: nerlab first, then any of nerlab-int8, nerlab-serial, pytorch, ort")
    if {"ort", "nerlab-int8", "nerlab-serial"} & set(engines) and args.task != "tag":
        raise SystemExit("ONNX Runtime and nerlab's int8 and serial paths are timed on the tag task only")
    tmp = tempfile.mkdtemp(prefix="nerlab-compare-")
    work = os.path.join(tmp, "work.json")
    nerlab_cmd = [
        args.nerlab, "bench", "--model", args.model, "--task", args.task, "--data", args.data,
        "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--steps", str(args.steps),
        "--bucket", args.bucket, "--device", args.device, "--json", "--dump-batches", work,
    ] + args.extra.split()
    ref = [sys.executable, os.path.join(HERE, "reference.py"), "--model", args.model, "--work", work,
           "--threads", str(args.threads), "--device", args.device]
    cmds = {"nerlab": nerlab_cmd, "nerlab-int8": nerlab_cmd + ["--int8"],
            "nerlab-serial": nerlab_cmd + ["--lanes", "1"], "pytorch": ref + ["--engine", "torch"],
            "ort": ref + ["--engine", "ort", "--onnx", os.path.join(tmp, "model.onnx")]}
    logits = {}
    # One untimed run each first: nerlab writes the work file, ONNX Runtime's side exports the
    # model, every engine writes its answers on the timed batches, and the page cache warms.
    for who in engines:
        extra = []
        if args.task == "tag":
            logits[who] = os.path.join(tmp, f"logits-{who}.json")
            extra = ["--dump-logits", logits[who]]
        run_json(cmds[who] + extra)
        print(f"  warm-up {who} done", file=sys.stderr)
    runs = {who: [] for who in engines}
    for r in range(args.repeats):
        # Each engine goes first in turn, so none always meets the machine in the same state.
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for who in order:
            runs[who].append(run_json(cmds[who]))
            steal = runs[who][-1].get("steal")
            note = f", {steal:.0%} of the CPU time stolen" if steal is not None else ""
            print(f"  repeat {r + 1} {who}: {runs[who][-1]['sentences_per_sec']:.2f} sentences/s{note}", file=sys.stderr)

    def med(who, key, sub=None):
        vals = [(x[key][sub] if sub else x[key]) for x in runs[who] if x.get(key) is not None]
        return statistics.median(vals) if vals else None

    rows = [("sentences/s", "sentences_per_sec", None, True), ("tokens/s", "tokens_per_sec", None, True),
            ("peak RSS MiB", "peak_rss_bytes", None, False)]
    if args.task == "tag":
        rows += [("latency p50 ms", "latency_ms", "p50", False), ("latency p99 ms", "latency_ms", "p99", False)]
    else:
        rows += [(f"{p} ms/step", "phase_ms", p, False) for p in ("forward", "backward", "optimizer")]
    names = {"nerlab": "nerlab", "nerlab-int8": "nerlab int8", "nerlab-serial": "serial",
             "pytorch": "PyTorch", "ort": "ORT fp32"}
    # Each of nerlab's engines against each reference; the int8 and serial paths also against
    # nerlab's default.
    ours = [w for w in engines if w.startswith("nerlab")]
    others = [w for w in engines if not w.startswith("nerlab")]
    pairs = ([(a, b) for a in ours for b in others] + [("nerlab-int8", "nerlab")] * ("nerlab-int8" in engines)
             + [("nerlab", "nerlab-serial")] * ("nerlab-serial" in engines))
    label = lambda a, b: (f"vs {names[b]}" if a == "nerlab" else f"{names[a].split()[-1]} vs {names[b]}")
    summary = {"task": args.task, "model": args.model, "data": args.data, "batch_size": args.batch_size,
               "threads": args.threads, "steps": args.steps, "repeats": args.repeats, "bucket": args.bucket,
               "rows": {}, "outputs": {}}
    print(f"{args.task}, {os.path.basename(args.model.rstrip('/'))}, {os.path.basename(args.data)}, batch "
          f"{args.batch_size}, {'length-sorted' if args.bucket == 'true' else 'random'} batches, "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"{'':18}" + "".join(f"{names[w]:>12}" for w in engines) + "".join(f"{label(a, b):>21}" for a, b in pairs))
    for name, key, sub, higher_better in rows:
        vals = {w: med(w, key, sub) for w in engines}
        if any(v is None for v in vals.values()):
            continue
        if key == "peak_rss_bytes":
            vals = {w: v / 2**20 for w, v in vals.items()}
        ratio = lambda a, b: (vals[a] / vals[b]) if higher_better else (vals[b] / vals[a] if vals[a] else float("inf"))
        ratios = {(a, b): ratio(a, b) for a, b in pairs}
        summary["rows"][name] = {**vals, **{("ratio_" + b if a == "nerlab" else f"ratio_{a}_{b}"): r
                                            for (a, b), r in ratios.items()}}
        print(f"{name:18}" + "".join(f"{vals[w]:12.2f}" for w in engines) + "".join(f"{r:20.2f}x" for r in ratios.values()))
    print("(ratio: nerlab's advantage; above 1 means nerlab is faster, quicker or smaller)")
    # How far a verdict moves with the machine: each engine's range over the repeats, and the
    # ratio of each repeat's pair (the engines run back to back within a repeat).
    speeds = {w: [x["sentences_per_sec"] for x in runs[w]] for w in engines}
    print("spread over the repeats, sentences/s: " + ", ".join(
        f"{names[w]} {min(v):.2f}-{max(v):.2f}" for w, v in speeds.items()))
    for a, b in pairs:
        per = [x / y for x, y in zip(speeds[a], speeds[b])]
        summary.setdefault("pair_ratios", {})[f"{a}_{b}"] = per
        print(f"  {names[a]} / {names[b]} within each repeat: " + ", ".join(f"{r:.2f}x" for r in per))
    steals = [x["steal"] for w in engines for x in runs[w] if "steal" in x]
    if steals:
        summary["steal_max"] = max(steals)
        print(f"CPU time stolen by the hypervisor during the timed runs: at most {max(steals):.0%}"
              + ("  (over 5%: the machine was shared; rerun when it is quiet)" if max(steals) > 0.05 else ""))
    if logits:
        for a, b in pairs:
            same, worst, n = agreement(json.load(open(logits[a])), json.load(open(logits[b])))
            key = b if a == "nerlab" else f"{a}_{b}"
            summary["outputs"][key] = {"argmax_agreement": same, "max_abs_logit_diff": worst, "units": n}
            print(f"outputs, {names[a]} vs {names[b]}: argmax agreement {same:.4%} over {n} units, "
                  f"largest class-score difference {worst:.2e}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
