#!/usr/bin/env bash
# IA³ in pets against Hugging Face PEFT's IA3 on the same base: the ia3 preset with its vectors
# drawn from N(1, 0.1²) (init: Normal(0.1)) and a few training steps on `mr`, then two checks
# of the logits against `pets predict` (tolerance 1e-4):
#  1. `pets export --format peft`: scripts/peft_check.py compare loads adapter_config.json (IA3)
#     and adapter_model.safetensors with PeftModel.from_pretrained;
#  2. pets' own export: scripts/peft_check.py compare-ia3 builds PEFT's IA3 by hand and copies
#     pets' vectors in.
#
# usage: scripts/ia3_check.sh [--steps N] [--release]
# Environment: PEFT_VENV (a venv with torch, transformers and peft; default .venv-peft, installed
# as scripts/peft_check.sh does), PEFT_WORK (scratch folder), CARGO_TARGET_DIR as for cargo.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/check-common.sh
. scripts/check-common.sh
steps=5 profile=debug
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps=$2; shift ;;
        --release) profile=release ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

skip() {
    echo "error: $1" >&2
    exit 1
}
peft_venv
build_pets "$profile"
"$pets" fetch --model minilm-l6 >&2
base=$("$pets" fetch --model minilm-l6 2>&1 | sed -n 's/^model minilm-l6: //p')

work=${PEFT_WORK:-$(mktemp -d)}
mkdir -p "$work"
sed 's/insertion: Sequential)/insertion: Sequential, init: Normal(0.1))/' \
    search_spaces/presets/ia3.ron > "$work/ia3.ron"
echo "training IA³ (vectors from N(1, 0.1²)) for $steps steps on mr ..." >&2
"$pets" train --design "$work/ia3.ron" --task mr --epochs 1 --max-steps "$steps" --quiet \
    --out "$work/run" >/dev/null
"$pets" export --run "$work/run" --out "$work/pets" --force
"$pets" predict --adapter "$work/pets" --format jsonl < scripts/peft_texts.txt > "$work/pets.jsonl"
"$pets" export --run "$work/run" --out "$work/peft" --format peft --force
"$py" scripts/peft_check.py compare --adapter "$work/peft" --predictions "$work/pets.jsonl" \
    --base "$base"
"$py" scripts/peft_check.py compare-ia3 --adapter "$work/pets" --predictions "$work/pets.jsonl" \
    --base "$base"
