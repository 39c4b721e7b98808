#!/usr/bin/env bash
# The unified-view runs that fit in one device call: `pets unified` on a plan (default
# search_spaces/plans/unified-view-0.5.ron, the ~0.5% part of the full plan) with --jobs 14 under
# MPS, stopped after LIMIT seconds (default 420; finished runs are kept and reused). Prepare and
# call as scripts/gpu-search-quality.sh. Output: $OUT/unified-runs.tgz (every run folder without
# its trained tensors: what `pets unified --report-only` reads; unpack it at the repository root,
# then `pets unified --report-only`) and $OUT/unified.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/pets-unified-out}
export PETS_CACHE=/tmp/pets-cache
mkdir -p "$out" /tmp/pets-unified
exec > >(tee -a "$out/unified.log") 2>&1
cache=$PETS_CACHE
source scripts/gpu-assets.sh
[ -x /tmp/pets-unified/pets ] || unxz_bin .gpu/bin/pets.xz /tmp/pets-unified/pets
export PATH="/tmp/pets-unified:$PATH"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p /tmp/mps /tmp/mps-log
pgrep -x nvidia-cuda-mps >/dev/null || nvidia-cuda-mps-control -d || echo "MPS not started"
start=$(date +%s)
timeout -s INT "${LIMIT:-420}" pets unified --plan "${PLAN:-search_spaces/plans/unified-view-0.5.ron}" \
    --device cuda --jobs "${JOBS:-14}" ${SECTIONS:+--sections "$SECTIONS"} --runs runs/unified --reports /tmp/pets-unified/reports
echo "pets unified exit $?, $(($(date +%s) - start)) s"
find runs/unified -name metrics.json | wc -l
tar czf "$out/unified-runs.tgz" --exclude='*.safetensors' runs/unified
