#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one go and within 10 minutes: build nerlab with CUDA, run
# the test suite on it (tests/gpu_path.rs then also trains on the GPU and compares its dev F1
# with the CPU's), train the parity recipe once on the GPU, and compare training and tagging
# speed with PyTorch on the same GPU (bench/compare.py --device). Results under $OUT.
#
#   scripts/gpu_check.sh                    # needs cargo, nvidia-smi and ~/.cache/nerlab-py (torch)
#   DEVICE=cuda:1 OUT=/tmp/gpu scripts/gpu_check.sh
#
# Uses the system CUDA when nvcc is on PATH, else the PyPI one of scripts/check_cuda_build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$HOME/.cache/nerlab-exp/gpu-check}
DEVICE=${DEVICE:-cuda:0}
PY=${PY:-$HOME/.cache/nerlab-py/bin/python}
MODEL=${MODEL:-$HOME/.cache/ner-models/multilingual-e5-small}
DATA=${DATA:-../shared/data/wikiann/xtreme-panx}
TARGET=${CUDA_TARGET_DIR:-$HOME/.cache/nerlab/cuda-target}
mkdir -p "$OUT"
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/log.txt"; }

step "the GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$OUT/gpu.csv"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
if ! command -v nvcc >/dev/null; then
  CUDA=$(ls -d "${VENV:-$HOME/.cache/nerlab-cuda}"/lib/python3*/site-packages/nvidia/cu13 | head -1)
  export PATH="$CUDA/bin:$PATH" CUDA_ROOT="$CUDA" CUDA_PATH="$CUDA"
  export NVCC_PREPEND_FLAGS="-I$CUDA/include -I$CUDA/include/cccl"
fi

step "build (release, --features cuda)"
cargo build --release --features cuda --target-dir "$TARGET" 2>&1 | tail -2
NERLAB=$TARGET/release/nerlab

step "the test suite, with the GPU"
NERLAB_TEST_DEVICE=$DEVICE cargo test --release --features cuda --target-dir "$TARGET" \
  2>&1 | tee "$OUT/tests.txt" | grep -E "^test result|FAILED|panicked" || true
grep -q "FAILED" "$OUT/tests.txt" && echo "some tests failed: $OUT/tests.txt"

step "the parity recipe once on $DEVICE (e5-small, 2,000 WikiANN-ko sentences, 3 epochs)"
"$NERLAB" sample "$DATA/train-ko.tsv" --max-sentences 2000 --seed 0 -o "$OUT/train-2000.tsv" >/dev/null
rm -rf "$OUT/runs/parity-gpu"
/usr/bin/time -v "$NERLAB" train --quiet --model "$MODEL" --train "$OUT/train-2000.tsv" \
  --dev "$DATA/dev-ko.tsv" --epochs 3 --batch-size 16 --lr 5e-5 --weight-decay 0 --warmup 0 \
  --clip 1.0 --no-bucket --seed 1 --device "$DEVICE" --out "$OUT/runs" --name parity-gpu \
  2> "$OUT/parity-gpu.time" | tee "$OUT/parity-gpu.txt"
grep -E "Elapsed|Maximum resident" "$OUT/parity-gpu.time" | tee -a "$OUT/log.txt"

for task in train tag; do
  step "speed against PyTorch on $DEVICE: $task"
  "$PY" bench/compare.py --nerlab "$NERLAB" --task $task --model "$MODEL" \
    --data "$DATA/dev-ko.tsv" --batch-size 32 --threads 8 --steps 50 --repeats 3 \
    --bucket true --device "$DEVICE" | tee "$OUT/compare-$task.txt"
done
step "done: $OUT"
