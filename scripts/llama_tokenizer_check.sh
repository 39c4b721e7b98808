#!/usr/bin/env bash
# pets' tokenizer for a GGUF checkpoint (SmolLM2-135M-Instruct) against transformers' on every
# text of a task (default mr, 8,530 sentences): examples/gguf_tokenize.rs writes pets' ids, then
# scripts/llama_tokenizer_check.py compares them with transformers' from the same file.
#
# usage: scripts/llama_tokenizer_check.sh --gguf MODEL.gguf [--task mr] [--max-len 512]
# Environment: PEFT_VENV (a venv with torch and transformers, as scripts/peft_check.sh installs;
# the `gguf` package is added to it when missing), PEFT_WORK (scratch folder), CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/check-common.sh
. scripts/check-common.sh
gguf= task=mr max_len=512
while [ $# -gt 0 ]; do
    case "$1" in
        --gguf) gguf=$2; shift ;;
        --task) task=$2; shift ;;
        --max-len) max_len=$2; shift ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$gguf" ] || { echo "error: --gguf MODEL.gguf is required" >&2; exit 2; }

skip() {
    echo "error: $1" >&2
    exit 1
}
peft_venv
"$py" -c "import gguf" 2>/dev/null || "$py" -m pip install -q gguf >&2 ||
    skip "could not install the gguf package"

work=${PEFT_WORK:-$(mktemp -d)}
mkdir -p "$work"
cargo run -q --release --example gguf_tokenize -- "$gguf" "$task" "$max_len" > "$work/ids.jsonl"
"$py" scripts/llama_tokenizer_check.py --gguf "$gguf" --pets "$work/ids.jsonl" --max-len "$max_len"
