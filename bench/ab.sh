#!/usr/bin/env bash
# "Throughput within noise of before": `nerlab bench` run by two binaries in turns (A B A B ...),
# PAIRS pairs per case, and the median tokens/s of each with the ratio B/A. Alternating spreads
# whatever else the machine does over both sides. Usage:
#   bench/ab.sh OLD_BINARY NEW_BINARY
# Cases (CASES="char-train char-tag e5-train e5-tag"): the character model on KLUE-NER dev and
# multilingual-e5-small on WikiANN-ko, batch 16, 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2
PAIRS=${PAIRS:-3}
CASES=${CASES:-"char-train char-tag e5-train e5-tag"}
MODELS=${MODELS:-$HOME/.cache/ner-models}
DATA=../shared/data
for case in $CASES; do
  case $case in
    char-*) args=(--model char --data "$DATA/klue-ner/klue-ner-v1.1_dev.tsv" --steps 30) ;;
    e5-*) args=(--model "$MODELS/multilingual-e5-small" --data "$DATA/wikiann/xtreme-panx/dev-ko.tsv" --steps 10) ;;
  esac
  task=${case#*-}
  a=(); b=()
  for _ in $(seq "$PAIRS"); do
    a+=("$("$A" bench --task "$task" "${args[@]}" --threads 2 --batch-size 16 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_sec"])')")
    b+=("$("$B" bench --task "$task" "${args[@]}" --threads 2 --batch-size 16 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_sec"])')")
  done
  python3 - "$case" "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
case, a, b = sys.argv[1], list(map(float, sys.argv[2].split())), list(map(float, sys.argv[3].split()))
ma, mb = statistics.median(a), statistics.median(b)
print(f"{case:10s} A {ma:9.0f} tok/s  B {mb:9.0f} tok/s  B/A {mb/ma:.3f}  (A {' '.join(f'{x:.0f}' for x in a)}; B {' '.join(f'{x:.0f}' for x in b)})")
PY
done
