#!/usr/bin/env bash
# "Outputs unchanged" check of docs/PERFORMANCE.md: the same short fine-tuning runs, run by several
# nerlab binaries (e.g. one built before the speed work and one after); prints each run's dev micro F1
# (all digits) and its logged training losses at steps 10 and 20 and the last one.
#   tiny  splade-tiny-bert-mlm, 1,000 WikiANN-en training sentences, 3 epochs at lr 1e-3, seed 1
#   mini  all-MiniLM-L6-v2, the same sentences, 2 epochs at lr 3e-4, seed 1
#   e5    multilingual-e5-small, 1,000 WikiANN-ko training sentences, 2 epochs at lr 1e-4, seed 1
#   demo  the offline demo preset (character model), seed 1
# Dev: 1,000 sentences of the same language (seed-7 subsets), batch 16, 2 threads. RUNS="tiny mini"
# picks a subset. Build the binaries from the commits to compare, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
#   bench/fixed_run.sh /tmp/old/target/release/nerlab target/release/nerlab
# A binary path may be followed by extra train flags after a colon: "target/release/nerlab:--dense-embedding".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$HOME/.cache/nerlab-exp/fixed}
MODELS=${MODELS:-$HOME/.cache/ner-models}
RUNS=${RUNS:-"tiny mini e5 demo"}
DATA=../shared/data/wikiann/xtreme-panx
mkdir -p "$OUT/runs"
first=${1%%:*}
for lang in en ko; do
  "$first" sample "$DATA/train-$lang.tsv" --max-sentences 1000 --seed 7 -o "$OUT/train-$lang.tsv" >/dev/null
  "$first" sample "$DATA/dev-$lang.tsv" --max-sentences 1000 --seed 7 -o "$OUT/dev-$lang.tsv" >/dev/null
done
for spec in "$@"; do
  bin=${spec%%:*}; extra=""; [ "$spec" != "$bin" ] && extra=${spec#*:}
  tag=$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")$(echo "$extra" | tr -c 'a-z0-9' '_')
  for run in $RUNS; do
    name="$run-$(echo "$tag" | md5sum | cut -c1-8)"
    rm -rf "$OUT/runs/$name"
    common=(--quiet --batch-size 16 --seed 1 --threads 2 --eval-every 100000 --out "$OUT/runs" --name "$name")
    case $run in
      tiny) args=(--model "$MODELS/splade-tiny-bert-mlm" --train "$OUT/train-en.tsv" --dev "$OUT/dev-en.tsv" --epochs 3 --lr 1e-3) ;;
      mini) args=(--model "$MODELS/all-MiniLM-L6-v2" --train "$OUT/train-en.tsv" --dev "$OUT/dev-en.tsv" --epochs 2 --lr 3e-4) ;;
      e5) args=(--model "$MODELS/multilingual-e5-small" --train "$OUT/train-ko.tsv" --dev "$OUT/dev-ko.tsv" --epochs 2 --lr 1e-4) ;;
      demo) args=(--preset demo); common=(--quiet --seed 1 --threads 2 --out "$OUT/runs" --name "$name") ;;
    esac
    # shellcheck disable=SC2086
    "$bin" train "${args[@]}" "${common[@]}" $extra > "$OUT/$name.log" 2>&1
    python3 - "$OUT/runs/$name" "$spec" "$run" <<'PY'
import json, sys
d = sys.argv[1]
f1 = json.load(open(f"{d}/report.json"))["dev"]["micro"]["f1"]
loss = {r["step"]: r["loss"] for r in map(json.loads, open(f"{d}/metrics.jsonl")) if "loss" in r}
last = max(loss)
print(f"{sys.argv[3]:5s} dev micro F1 {f1:.12f}  loss@10 {loss.get(10, float('nan')):.10f}  "
      f"loss@20 {loss.get(20, float('nan')):.10f}  loss@{last} {loss[last]:.10f}  {sys.argv[2]}")
PY
  done
done
