#!/usr/bin/env bash
# Training step for step against PyTorch: `nerlab bench --task train --no-dropout` and
# bench/reference.py run the same batches from the same initial weights (the pretrained encoder
# and nerlab's initial head) with dropout off, AdamW (lr 5e-5, weight decay 0.01 except biases and
# LayerNorm) and clipping at 1.0; with no randomness left the two training losses must agree at every
# step up to float rounding. Prints both losses per step and the largest relative difference.
#   bench/trajectory.sh [MODEL_DIR] [CORPUS] [STEPS]
# e.g. bench/trajectory.sh ~/.cache/ner-models/multilingual-e5-small \
#        ../shared/data/wikiann/xtreme-panx/train-ko.tsv 60
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$HOME/.cache/ner-models/multilingual-e5-small}
DATA=${2:-../shared/data/wikiann/xtreme-panx/train-ko.tsv}
STEPS=${3:-60}
THREADS=${THREADS:-2}
PY=${PY:-$HOME/.cache/nerlab-py/bin/python}
NERLAB=${NERLAB:-${CARGO_TARGET_DIR:-target}/release/nerlab}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$NERLAB" bench --model "$MODEL" --task train --data "$DATA" --batch-size 16 --steps "$STEPS" \
  --threads "$THREADS" --no-dropout --json --dump-batches "$TMP/work.json" > "$TMP/nerlab.json"
"$PY" bench/reference.py --model "$MODEL" --work "$TMP/work.json" --threads "$THREADS" 2>/dev/null > "$TMP/torch.json"
"$PY" - "$TMP/nerlab.json" "$TMP/torch.json" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))["losses"]
b = json.load(open(sys.argv[2]))["losses"]
assert len(a) == len(b), (len(a), len(b))
print(f"{'step':>4}  {'nerlab':>12}  {'pytorch':>12}  rel. diff")
worst = 0.0
for i, (x, y) in enumerate(zip(a, b), 1):
    d = abs(x - y) / max(abs(y), 1e-12)
    worst = max(worst, d)
    print(f"{i:4d}  {x:12.8f}  {y:12.8f}  {d:.2e}")
print(f"steps {len(a)}, largest relative difference of the training loss {worst:.2e}")
PYEOF
