#!/usr/bin/env bash
# Creates the Python environment `pets bench` runs its PyTorch reference in (bench/reference.py):
# a venv (default .venv-bench, gitignored) with pinned torch, numpy and safetensors.
#
# usage: scripts/bench-setup.sh [VENV]
#
# Why the full install (5.4 GB, ~5 minutes): the only Linux x86_64 torch wheel in the registry
# is the CUDA build, whose dependencies are ~4 GB of nvidia-* libraries plus triton. Installing
# it with `--no-deps` (plus its small pure-Python dependencies) was tried on 2026-12-01 and does
# not work even on a CPU-only machine: `import torch` preloads libcublasLt from the nvidia-*
# packages and raises "ValueError: libcublasLt.so.*[0-9] not found". CPU wheels (`+cpu`) are not
# in the registry. The CUDA build runs on the CPU with MKL and oneDNN, which is what we compare.
# On a GPU machine whose python3 already has torch, skip this and pass `--python python3`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv-bench}
py=$venv/bin/python

# Versions reports/bench.md was measured with (numpy 2.5 needs Python >= 3.12; 2.4.6 is the
# newest for the 3.11 here). torch only warns without numpy; the reference does not need it.
pins="torch==2.15.0 numpy==2.4.6 safetensors==0.8.0"

works() {
    # A real matmul and autograd step on the CPU, not just the import.
    "$py" - <<'PY' 2>/dev/null
import torch, safetensors.torch
x = torch.randn(4, 4, requires_grad=True)
(x @ x).sum().backward()
assert x.grad is not None
PY
}

if [ -x "$py" ] && works; then
    echo "$venv already works: $("$py" -c 'import torch; print("torch", torch.__version__)')"
    exit 0
fi

python3 -m venv "$venv"
echo "installing $pins into $venv (once; ~5 GB, several minutes) ..." >&2
# shellcheck disable=SC2086
"$py" -m pip install -q $pins
works || { echo "error: torch does not run from $venv" >&2; exit 1; }
"$py" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
