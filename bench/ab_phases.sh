#!/usr/bin/env bash
# Alternating runs of `nerlab bench` with e5-small by several binaries (bench/ab.sh gives only the
# median tokens/s of fixed cases); this one takes any task, corpus and step count and
# prints each run's sentences/s, phase times and last logged loss (same losses = same training).
#   bench/ab_phases.sh TASK DATA STEPS PAIRS BINARY...
#   bench/ab_phases.sh train ../shared/data/wikiann/xtreme-panx/train-ko.tsv 20 3 /tmp/old/nerlab target/release/nerlab
# MODEL overrides the model (default ~/.cache/ner-models/multilingual-e5-small).
set -euo pipefail
task=$1; data=$2; steps=$3; pairs=$4; shift 4
model=${MODEL:-$HOME/.cache/ner-models/multilingual-e5-small}
for _ in $(seq "$pairs"); do
  for b in "$@"; do
    out=$("$b" bench --task "$task" --model "$model" --data "$data" --steps "$steps" --threads 2 \
      --latency-samples 5 --json 2>/dev/null | tail -1)
    echo "$b $(echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
phases = {k: round(v, 1) for k, v in (d.get("phase_ms") or {}).items()}
print(round(d["sentences_per_sec"], 2), "sentences/s", round(d["tokens_per_sec"]), "tokens/s",
      phases, "last loss", (d.get("losses") or [None])[-1])')"
  done
done
