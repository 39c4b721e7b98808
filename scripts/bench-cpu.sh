#!/usr/bin/env bash
# Regenerates reports/bench.md on this machine's CPU in one run (bench/cpu_report.py says what
# it measures): the fp32 training step against bench/reference.py, one epoch of `mr` end to end
# against PyTorch (PEFT for lora), bucketing's and bf16's accuracy over 3 seeds, and a bf16
# section. About 20 minutes on 2 otherwise idle cores. Children's outputs stay in runs/bench-cpu/ and are
# reused, so an interrupted run resumes; `--report-only` re-renders from them.
#
# Before measuring it waits (at most 90 s) for the load of its own build to settle, and it
# records the CPU time other processes used meanwhile (bench/cpu_report.py).
#
# usage: scripts/bench-cpu.sh [--threads N] [--report PATH] [--report-only] [--until HH:MM]
#        [--settle-load L] [--settle-max S]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv-bench/bin/python
bash scripts/bench-setup.sh >&2
# PEFT (with transformers) for the PyTorch LoRA of the end-to-end run.
"$py" -c 'import peft' 2>/dev/null || "$py" -m pip install -q peft==0.21.2
cargo build --release >&2
target/release/pets fetch >&2
exec "$py" bench/cpu_report.py --pets target/release/pets --python "$py" "$@"
