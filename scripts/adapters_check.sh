#!/usr/bin/env bash
# Round trip of designs through AdapterHub `adapters`: for each design, train a step on 256 `mr`
# reviews,
# randomise every module tensor (scripts/adapters_check.py randomise), export it in pets' format
# and with --format adapters, and check that adapters' own forward gives `pets predict`'s logits
# on real `mr` texts within 1e-4, the modules moving the logits by at least 100x that.
#
# usage: scripts/adapters_check.sh [--allow-skip] [DESIGN.ron ...]
#   default designs: the pfeiffer, parallel_adapter, scaled_parallel_adapter, prefix, lora and
#   mam presets. The committed search's best design (mam trial 38) is committed as
#   search_spaces/found/mr-mam-trial38.ron, written from the study store with:
#     sqlite3 studies/pets.sqlite "select t.design from trials t join studies s on
#       s.id = t.study_id where s.name = 'mam' and t.number = 38" > search_spaces/found/mr-mam-trial38.ron
# Environment: ADAPTERS_VENV (default /work/venv-adapters; adapters' pins clash with the PEFT
# venv's transformers 5), ADAPTERS_WORK (scratch folder), CARGO_TARGET_DIR as for cargo.
# Checked with adapters 1.3.0, transformers 4.57.6, torch 2.15.0 (torch reused from the PEFT
# venv through a .pth file: `echo <peft venv site-packages> > <venv site-packages>/bench.pth`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/check-common.sh
. scripts/check-common.sh
allow_skip=0 designs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --allow-skip) allow_skip=1 ;;
        *) designs+=("$1") ;;
    esac
    shift
done
[ ${#designs[@]} -gt 0 ] || designs=(search_spaces/presets/{pfeiffer,parallel_adapter,scaled_parallel_adapter,prefix,lora,mam}.ron)

pins="transformers==4.57.6 adapters==1.3.0"
venv=${ADAPTERS_VENV:-/work/venv-adapters}
py=$venv/bin/python
if ! "$py" -c "import torch, adapters" 2>/dev/null; then
    if [ "$allow_skip" = 1 ]; then
        echo "skipped: no venv with torch and adapters at $venv (pip install torch $pins)"
        exit 0
    fi
    echo "error: no venv with torch and adapters at $venv (pip install torch $pins)" >&2
    exit 1
fi
build_pets debug
fetched=$("$pets" fetch --model minilm-l6 --data mr 2>&1)
base=$(sed -n 's/^model minilm-l6: //p' <<<"$fetched")
data=$(sed -n 's/^data mr: //p' <<<"$fetched")
work=${ADAPTERS_WORK:-$(mktemp -d)}
mkdir -p "$work"
"$py" scripts/adapters_check.py texts "$data" "$work/texts.txt" 32 --task "$work/task.csv"
status=0
for design in "${designs[@]}"; do
    name=$(basename "$design" .ron)
    out=$work/$name
    "$pets" train --design "$design" --task "$work/task.csv" --epochs 1 --max-steps 1 --quiet \
        --out "$out/run" >/dev/null
    "$py" scripts/adapters_check.py randomise "$out/run"
    "$pets" export --run "$out/run" --out "$out/pets" --force 2>/dev/null
    if ! "$pets" export --run "$out/run" --out "$out/adapters" --format adapters --force; then
        status=1
        continue
    fi
    "$pets" predict --adapter "$out/pets" --format jsonl < "$work/texts.txt" > "$out/pets.jsonl"
    "$py" scripts/adapters_check.py compare --adapter "$out/adapters" \
        --predictions "$out/pets.jsonl" --base "$base" || status=1
done
exit $status
