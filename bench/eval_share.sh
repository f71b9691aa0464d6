#!/usr/bin/env bash
# How much of a small K-shot run's wall time goes to evaluating on dev (docs/PERFORMANCE.md): one
# run per binary given, alternating, of multilingual-e5-small on WikiANN-ko with K = 10 examples
# per type (about 30 training sentences), 10 epochs at batch 16, evaluated after every epoch on
# 1,000 dev sentences (a seed-7 subset), seed 1, 2 threads. Prints each run's wall time and, where
# the binary writes `eval_secs` into metrics.jsonl (from commit a4beade on), the seconds spent
# evaluating and their share. Usage:
#   bench/eval_share.sh OLD_BINARY NEW_BINARY [...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$HOME/.cache/nerlab-exp/eval-share}
MODEL=${MODEL:-$HOME/.cache/ner-models/multilingual-e5-small}
DATA=../shared/data/wikiann/xtreme-panx
mkdir -p "$OUT"
"$1" sample "$DATA/dev-ko.tsv" --max-sentences 1000 --seed 7 -o "$OUT/dev-ko.tsv" >/dev/null
for bin in "$@"; do
  name=run-$(echo "$bin" | md5sum | cut -c1-8)
  rm -rf "${OUT:?}/$name"
  start=$(date +%s.%N)
  "$bin" train --model "$MODEL" --train "$DATA/train-ko.tsv" --k-shot 10 --dev "$OUT/dev-ko.tsv" \
    --epochs 10 --batch-size 16 --seed 1 --threads 2 --quiet --out "$OUT" --name "$name" \
    >"$OUT/$name.log" 2>&1
  end=$(date +%s.%N)
  python3 - "$OUT/$name" "$start" "$end" "$bin" <<'PY'
import json, sys
run, start, end, binary = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
wall = end - start
evals = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"eval"' in l]
secs = [e["eval_secs"] for e in evals if "eval_secs" in e]
steps = max(json.loads(l)["step"] for l in open(f"{run}/metrics.jsonl"))
line = f"{binary}: wall {wall:.1f} s, {steps} steps, {len(evals)} evaluations"
if secs:
    line += f", evaluating {sum(secs):.1f} s ({sum(secs) / wall:.1%} of the wall time)"
print(line)
PY
done
