#!/usr/bin/env bash
# Wall time of a grid of 8 small runs (character model, built-in demo corpus, 3 epochs) with
# `--jobs 2 --threads 1` against `--jobs 1 --threads 2`, alternating, REPEATS times each.
#
#   bench/experiment_jobs.sh BINARY [REPEATS]
#
# Prints each timing and the ratio of the medians (jobs 2 / jobs 1; below 1: two jobs are faster).
set -euo pipefail
BIN=$(realpath "$1")
REPEATS=${2:-2}
WORK=$(mktemp -d -t nerlab-jobs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/grid.toml" <<TOML
name = "jobs-bench"
out = "runs"
[base]
data.train = ["builtin:demo/train"]
data.dev = "builtin:demo/dev"
model.source = "char"
train.epochs = 3
train.lr = 0.002
[grid]
"model.head" = ["softmax", "crf"]
seed = [1, 2, 3, 4]
TOML
cd "$WORK"
one() { # JOBS THREADS -> seconds
    rm -rf runs
    local start end
    start=$(date +%s.%N)
    "$BIN" experiment run grid.toml --quiet --jobs "$1" --threads "$2" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
a=(); b=()
for _ in $(seq "$REPEATS"); do
    a+=("$(one 2 1)"); b+=("$(one 1 2)")
    echo "jobs 2 x threads 1: ${a[-1]} s   jobs 1 x threads 2: ${b[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
ma=$(median "${a[@]}"); mb=$(median "${b[@]}")
echo "median: jobs 2 x threads 1 ${ma} s, jobs 1 x threads 2 ${mb} s, ratio $(echo "scale=3; $ma / $mb" | bc)"
