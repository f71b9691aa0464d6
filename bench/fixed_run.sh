#!/usr/bin/env bash
# "Outputs unchanged" check of docs/PERFORMANCE.md: the same short fine-tuning run (e5-small,
# 300 WikiANN-ko training sentences, 1 epoch at lr 2e-4, seed 1, scored on 1,000 dev sentences) and the
# offline demo preset (character model), run by several nerlab binaries; prints each run's dev
# micro F1 and final training loss. Build the binaries from the commits to compare, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
#   bench/fixed_run.sh /tmp/old/target/release/nerlab target/release/nerlab
# A binary path may be followed by extra train flags after a colon: "target/release/nerlab:--dense-embedding".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$HOME/.cache/nerlab-exp/fixed}
MODEL=${MODEL:-$HOME/.cache/ner-models/multilingual-e5-small}
DATA=../shared/data/wikiann/xtreme-panx
mkdir -p "$OUT/runs"
first=${1%%:*}
"$first" sample "$DATA/train-ko.tsv" --max-sentences 300 --seed 7 -o "$OUT/train300.tsv" >/dev/null
"$first" sample "$DATA/dev-ko.tsv" --max-sentences 1000 --seed 7 -o "$OUT/dev1000.tsv" >/dev/null
for spec in "$@"; do
  bin=${spec%%:*}; extra=""; [ "$spec" != "$bin" ] && extra=${spec#*:}
  tag=$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")$(echo "$extra" | tr -c 'a-z0-9' '_')
  for run in e5 demo; do
    name="$run-$(echo "$tag" | md5sum | cut -c1-8)"
    rm -rf "$OUT/runs/$name"
    if [ $run = e5 ]; then
      # shellcheck disable=SC2086
      "$bin" train --quiet --model "$MODEL" --train "$OUT/train300.tsv" --dev "$OUT/dev1000.tsv" --epochs 1 --lr 2e-4 \
        --batch-size 16 --seed 1 --threads 2 --out "$OUT/runs" --name "$name" $extra > "$OUT/$name.log" 2>&1
    else
      # shellcheck disable=SC2086
      "$bin" train --quiet --preset demo --seed 1 --threads 2 --out "$OUT/runs" --name "$name" $extra > "$OUT/$name.log" 2>&1
    fi
    python3 - "$OUT/runs/$name" "$spec" "$run" <<'PY'
import json, sys
d = sys.argv[1]
f1 = json.load(open(f"{d}/report.json"))["dev"]["micro"]["f1"]
loss = [json.loads(l) for l in open(f"{d}/metrics.jsonl") if '"loss"' in l][-1]["loss"]
print(f"{sys.argv[3]:5s} dev micro F1 {f1:.10f}  last logged loss {loss:.10f}  {sys.argv[2]}")
PY
  done
done
