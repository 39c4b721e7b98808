# Sourced by scripts/peft_check.sh, ia3_check.sh and adapters_check.sh, after `set -euo pipefail`
# and `cd "$root"` (root: the repository).

# Versions the PEFT checks were run with (torch is ~5 GB with its CUDA wheels; installed once).
peft_pins="torch==2.15.0 transformers==5.23.0 peft==0.21.2"

# Sets venv and py to PEFT_VENV (default $root/.venv-peft), installing $peft_pins there when
# torch, transformers or peft does not import; calls the caller's `skip MESSAGE` if that fails.
peft_venv() {
    venv=${PEFT_VENV:-$root/.venv-peft}
    py=$venv/bin/python
    if ! "$py" -c "import torch, transformers, peft" 2>/dev/null; then
        echo "installing $peft_pins into $venv (once; several minutes) ..." >&2
        python3 -m venv "$venv" 2>/dev/null || skip "cannot create a Python venv at $venv"
        # shellcheck disable=SC2086
        "$py" -m pip install -q $peft_pins >&2 || skip "could not install $peft_pins"
        "$py" -c "import torch, transformers, peft" 2>/dev/null ||
            skip "torch, transformers or peft does not import"
    fi
}

# build_pets debug|release: builds the pets binary and sets pets to its path.
build_pets() {
    if [ "$1" = release ]; then
        cargo build -q --release --bin pets
    else
        cargo build -q --bin pets
    fi
    pets="${CARGO_TARGET_DIR:-$root/target}/$1/pets"
}
