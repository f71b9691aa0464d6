#!/usr/bin/env bash
# Compiles nerlab with `--features cuda` on a machine without a GPU: the CUDA compiler and headers
# come from PyPI (nvidia-cuda-nvcc and friends, into a venv under ~/.cache), candle's kernels are
# compiled to PTX for COMPUTE_CAP (default 90, Hopper), and cudarc links the driver at run time,
# so no GPU and no system CUDA are needed. `cargo check` by default (every target, tests included,
# type-checked; the kernels really compiled by nvcc); BUILD=1 builds the release binary as well.
#
#   scripts/check_cuda_build.sh            # about 10 minutes on 2 cores, warm
#   BUILD=1 scripts/check_cuda_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$HOME/.cache/nerlab-cuda}
COMPUTE_CAP=${COMPUTE_CAP:-90}
TARGET=${CUDA_TARGET_DIR:-$HOME/.cache/nerlab/cuda-target}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
CUDA=$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -1 || true)
if [ -z "$CUDA" ] || [ ! -x "$CUDA/bin/nvcc" ]; then
  # cudarc 0.19 knows CUDA up to 13.4 (it reads the version from `nvcc --version`).
  # Every part of the compiler from the same release: nvcc, its front end (nvvm), crt, nvrtc.
  "$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.4.*" "nvidia-cuda-runtime==13.4.*" \
    "nvidia-cuda-crt==13.4.*" "nvidia-nvvm==13.4.*" "nvidia-cuda-nvrtc==13.4.*" \
    "nvidia-cuda-cccl==13.*" "nvidia-cublas==13.*" nvidia-curand
  CUDA=$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 | head -1)
fi
export PATH="$CUDA/bin:$PATH" CUDA_ROOT="$CUDA" CUDA_PATH="$CUDA" CUDA_HOME="$CUDA"
export CUDA_COMPUTE_CAP=$COMPUTE_CAP
# PyPI's headers keep CCCL (cuda/std, thrust) in a folder of its own.
export NVCC_PREPEND_FLAGS="-I$CUDA/include -I$CUDA/include/cccl ${NVCC_PREPEND_FLAGS:-}"
echo "nvcc: $(nvcc --version | tail -2 | head -1)"
echo "compute capability: $CUDA_COMPUTE_CAP; target dir: $TARGET"
cargo check --features cuda --all-targets --target-dir "$TARGET"
if [ "${BUILD:-0}" = 1 ]; then
  cargo build --release --features cuda --target-dir "$TARGET"
  echo "built $TARGET/release/nerlab"
fi
echo "nerlab compiles with --features cuda"
