#!/usr/bin/env bash
# The training-parity experiment of docs/PARITY.md: multilingual-e5-small fine-tuned on 2,000
# WikiANN-ko training sentences (the seed-0 random subset), scored on all 10,000 dev sentences,
# by HF's token-classification recipe in PyTorch (scripts/hf_token_classification.py) and by
# nerlab with the same recipe (softmax head, 3 epochs, batch 16, lr 5e-5, no weight decay, no
# warmup, linear decay, clipping 1.0, random batches), seeds 1-3 each unless SEEDS says otherwise; then nerlab with a CRF,
# FGM and R-Drop on the same data (STAGES=tricks), and the two halves of that ablated
# (STAGES="crf fgm-rdrop"). Results: one JSON per run under $OUT.
# nerlab runs use --dense-embedding (dense AdamW on every word-embedding row, as torch's AdamW does;
# NERLAB_FLAGS="" measures nerlab's default row-sparse update instead).
#
#   bench/parity_wikiann_ko.sh            # needs ~/.cache/nerlab-py (torch, transformers, seqeval)
#   OUT=/tmp/parity STAGES="nerlab" bench/parity_wikiann_ko.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$HOME/.cache/nerlab-exp}
PY=${PY:-$HOME/.cache/nerlab-py/bin/python}
NERLAB=${NERLAB:-target/release/nerlab}
[ -x "$NERLAB" ] || NERLAB=${CARGO_TARGET_DIR:-target}/release/nerlab
MODEL=${MODEL:-$HOME/.cache/ner-models/multilingual-e5-small}
DATA=../shared/data/wikiann/xtreme-panx
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-"1 2 3"}
STAGES=${STAGES:-"pytorch nerlab tricks"}
NERLAB_FLAGS=${NERLAB_FLAGS---dense-embedding}
mkdir -p "$OUT"
TRAIN=$OUT/wikiann-ko-2000.tsv
"$NERLAB" sample "$DATA/train-ko.tsv" --max-sentences 2000 --seed 0 -o "$TRAIN" >/dev/null

nerlab_run() { # name, seed, extra flags...
  local name=$1 seed=$2; shift 2
  rm -rf "$OUT/runs/$name"
  "$NERLAB" train --quiet --model "$MODEL" --train "$TRAIN" --dev "$DATA/dev-ko.tsv" \
    --epochs 3 --batch-size 16 --lr 5e-5 --weight-decay 0 --warmup 0 --clip 1.0 --no-bucket \
    --eval-every 375 --seed "$seed" --threads "$THREADS" --out "$OUT/runs" --name "$name" $NERLAB_FLAGS "$@" \
    > "$OUT/$name.log" 2>&1
  "$PY" - "$OUT/runs/$name/report.json" "$OUT/$name.json" "$seed" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))["dev"]
json.dump({"seed": int(sys.argv[3]), "f1_strict": r["micro"]["f1"], "precision_strict": r["micro"]["precision"],
           "recall_strict": r["micro"]["recall"]}, open(sys.argv[2], "w"), indent=2)
PYEOF
}

for stage in $STAGES; do
  for s in $SEEDS; do
    case $stage in
      pytorch) PYTHONUNBUFFERED=1 "$PY" scripts/hf_token_classification.py --train "$TRAIN" --dev "$DATA/dev-ko.tsv" \
                 --model "$MODEL" --seed "$s" --threads "$THREADS" --out "$OUT/pytorch-seed$s.json" > "$OUT/pytorch-seed$s.log" 2>&1 ;;
      nerlab) nerlab_run "nerlab-seed$s" "$s" ;;
      tricks) nerlab_run "nerlab-crf-fgm-rdrop-seed$s" "$s" --head crf --fgm 1.0 --rdrop 1.0 ;;
      crf) nerlab_run "nerlab-crf-seed$s" "$s" --head crf ;;                    # ablation: the CRF alone
      fgm-rdrop) nerlab_run "nerlab-fgm-rdrop-seed$s" "$s" --fgm 1.0 --rdrop 1.0 ;; # ablation: softmax + tricks
    esac
    echo "$stage seed $s done"
  done
done
"$PY" - "$OUT" <<'PYEOF'
import glob, json, statistics, sys
out = sys.argv[1]
runs = {}
for name in ("pytorch", "nerlab", "nerlab-crf-fgm-rdrop", "nerlab-crf", "nerlab-fgm-rdrop"):
    rs = sorted((json.load(open(f)) for f in glob.glob(f"{out}/{name}-seed*.json")), key=lambda r: r["seed"])
    if rs:
        runs[name] = {r["seed"]: 100 * r["f1_strict"] for r in rs}
        f1 = list(runs[name].values())
        sd = f" sd {statistics.stdev(f1):.2f}" if len(f1) > 1 else ""
        print(f"{name:22s} seeds {list(runs[name])} F1 {[round(x, 2) for x in f1]} mean {statistics.mean(f1):.2f}{sd}")
# nerlab against PyTorch over the seeds both sides have: the gap and its standard error (Welch).
a, b = runs.get("nerlab", {}), runs.get("pytorch", {})
both = sorted(set(a) & set(b))
if len(both) > 1:
    x, y = [a[s] for s in both], [b[s] for s in both]
    gap = statistics.mean(x) - statistics.mean(y)
    se = (statistics.variance(x) / len(x) + statistics.variance(y) / len(y)) ** 0.5
    print(f"nerlab - pytorch over seeds {both}: {gap:+.2f} points (standard error {se:.2f}, t {gap / se:+.2f})")
PYEOF
