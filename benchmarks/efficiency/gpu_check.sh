#!/usr/bin/env bash
# The GPU figures, measured once by someone with an NVIDIA GPU (never in CI; about 20-30 minutes):
#   1. `nox -s bench -- --device cuda`: results/efficiency.{csv,md,png} (fast paths, the default step
#      against the peer, the fp32 GEMM limit) on the GPU;
#   2. the paper recipe's training steps per second, RefineNet-50/101/152, crop 400, batch 1, under
#      the suite's default (fp32 + channels_last, TF32 convolutions), bf16 autocast (channels_last)
#      and a peer-style eager fp32 step (NCHW), alternating in one process: results/training_speed.csv.
# Every row records the device. Commit both with the figures in the README's Speed section.
#
#   bash benchmarks/efficiency/gpu_check.sh            # PYTHON=... to use another interpreter than nox's
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.nox/suite/bin/python}"

if ! command -v nox >/dev/null && [ -z "${SKIP_BENCH:-}" ]; then
    echo "gpu_check: needs nox (python3 -m pip install nox)" >&2
    exit 2
fi
if [ -z "${SKIP_BENCH:-}" ] && [ ! -x "$PYTHON" ]; then
    nox -s bench -- --help >/dev/null  # creates the shared virtualenv .nox/suite
fi
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device visible to torch; this script measures a GPU")'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true

if [ -z "${SKIP_BENCH:-}" ]; then
    nox -s bench -- --device cuda
fi
"$PYTHON" -m benchmarks.efficiency.speed --device cuda --models RefineNet-50 RefineNet-101 RefineNet-152 --size 400 \
    --settings default channels_last+bf16 peer --warmup 3 --repeats 20 --out results
echo "gpu_check: done; commit results/efficiency.* and results/training_speed.csv, and put the figures in README.md"
