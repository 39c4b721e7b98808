#!/usr/bin/env bash
# One core's fp32 (FMA) and bf16 (vdpbf16ps) peak in GFLOP/s, three repeats: the peak that
# reports/bench-cpu-profile.md divides achieved rates by. Needs gcc and a CPU with AVX-512F and
# AVX512-BF16 (refused otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qw avx512_bf16 /proc/cpuinfo || { echo "cpu-peak.sh: this CPU has no AVX512-BF16" >&2; exit 1; }
grep -m1 'model name' /proc/cpuinfo
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
gcc -O2 -mavx512f -mavx512bf16 -o "$bin" bench/cpu_peak.c
"$bin"
