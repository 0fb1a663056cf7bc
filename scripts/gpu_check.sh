#!/usr/bin/env bash
# GPU check (issue 6), one short script, under 10 minutes on one GPU:
#   1. LoRA and SMP-LoRA training steps on CUDA in bf16 for a mid-sized SD-architecture model: steps/s, peak memory;
#   2. benchmarks/step_cost.py on CUDA (tiny profile, bf16): the cost of each private step relative to LoRA
#      (the fastest of two repeats, so that the first variant does not carry CUDA's warm-up alone).
# Usage: bash scripts/gpu_check.sh [WHEEL_DIR]
#   WHEEL_DIR: a folder of wheels to install from without network (GPU images often lack diffusers, peft, ...);
#   without it the current environment must already have the package's dependencies.
# Record the printed numbers, with the GPU model, in benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -n "${1:-}" ]; then
    "$PY" -m pip install -q --no-index --find-links "$1" -e . || "$PY" -m pip install -q --no-index --no-deps -e .
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print('GPU:', torch.cuda.get_device_name(0))"
export HF_HUB_OFFLINE=1 SMPLORA_OUTPUTS="${SMPLORA_OUTPUTS:-$(mktemp -d)}"
start=$(date +%s)
timeout 300 "$PY" benchmarks/gpu_steps.py --mixed-precision bf16
timeout 240 "$PY" benchmarks/step_cost.py --epochs 3 --repeats 2 -p mixed_precision bf16
echo "[gpu_check] total $(( $(date +%s) - start )) s"
