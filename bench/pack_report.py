#!/usr/bin/env python3
"""reports/bench-pack.md from what scripts/gpu-bench-pack.sh leaves in its output folder
(Python's standard library only).

store-summary  the packed search's store -> pack.json (wall, trials, trials per hour)
window         one process count's trials (a pets store, or torch_trials.py's JSON lines) ->
               trials per hour over the window (see `window` below)
render         every JSON in --dir (and --extra dirs, later ones winning) -> bench-pack.md
"""

import argparse
import glob
import json
import os
import re
import sqlite3
import statistics
import sys

TRIAL_WORDS = (
    "Every trial is one fresh design trained for 240 optimizer steps at batch 32 on `mr` "
    "(6,826 training sentences, pets' split; max_len 64) with minilm-l6 frozen, AdamW with "
    "warm-up and decay, the loss read back every step, dev accuracy (852 sentences) after each "
    "pass over the training data and at the last step (two evaluations: a pass is 214 steps), "
    "and the trial recorded: pets in its SQLite store (`--epochs 2 --max-steps 240 --rungs 1`), "
    "PyTorch as one JSON line. pets' trials are designs its sampler draws from "
    "`search_spaces/mam.ron` within 0.5% (prefixes, LoRA, bottlenecks of widths up to 512); "
    "PyTorch's alternate PEFT LoRA r=8 on query/value and MAM (prefix l=8 + scaled parallel "
    "FFN bottleneck r=16, bench/reference.py's modules) as fixed designs.")


def rows_of(store):
    c = sqlite3.connect(store)
    c.row_factory = sqlite3.Row
    return [dict(r) for r in c.execute(
        "SELECT number, kind, state, owner, started, finished, seconds, accuracy, params, error "
        "FROM trials WHERE kind = 'search'")]


def store_summary(a):
    out = {"wanted": a.wanted, "k": a.k, "j": a.j, "gen": a.gen, "rc": a.rc, "start": a.start, "end": a.end,
           "wall_s": a.end - a.start, "command": a.command}
    try:
        rows = rows_of(a.store)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"store unreadable: {e}"
        print(json.dumps(out, indent=1))
        return 0
    complete = [r for r in rows if r["state"] == "complete"]
    out.update({
        "trials": len(rows), "complete": len(complete),
        "failed": sum(r["state"] == "failed" for r in rows),
        "other": sum(r["state"] not in ("complete", "failed") for r in rows),
        "errors": sorted({(r["error"] or "")[:200] for r in rows if r["state"] == "failed"})[:5],
    })
    if complete:
        first = min(r["started"] for r in rows)
        last = max(r["finished"] for r in complete)
        out.update({
            "first_start": first, "last_finish": last, "trial_span_s": last - first,
            "trials_per_hour": len(complete) / out["wall_s"] * 3600,
            "trials_per_hour_span": len(complete) / max(last - first, 1e-9) * 3600,
            "median_trial_s": statistics.median(r["seconds"] for r in complete if r["seconds"]),
            "best_dev_accuracy": max(r["accuracy"] for r in complete if r["accuracy"] is not None),
            "median_dev_accuracy": statistics.median(
                r["accuracy"] for r in complete if r["accuracy"] is not None),
        })
    print(json.dumps(out, indent=1))
    return 0


def window(a):
    """Trials per hour over [ta, tb]: tb = launch + warm + window; ta = launch + warm, or later
    when a process had not started its first trial by then (start-up stays out). A trial counts
    by the share of its run inside the window; one still running at tb (killed there) by its
    time inside divided by the median complete trial's duration, at most 1."""
    trials = []  # (owner, start, end or None, state, kind)
    extra = {}
    if a.store:
        for r in rows_of(a.store):
            trials.append((r["owner"], r["started"], r["finished"], r["state"], None))
    else:
        starts, ends, ready = {}, {}, []
        for line in open(a.jsonl):
            if not line.strip():
                continue
            e = json.loads(line)
            key = (e.get("pid"), e.get("trial"))
            if e.get("event") == "start":
                starts[key] = e
            elif e.get("event") == "trial":
                ends[key] = e
            elif e.get("event") == "ready":
                ready.append(e.get("seconds_to_ready"))
                extra["versions"] = {k: e.get(k) for k in ("torch", "transformers", "peft")}
                extra["split"] = e.get("split")
        for key, s in starts.items():
            e = ends.get(key)
            trials.append((key[0], s["t_start"], e["t_end"] if e else None,
                           "complete" if e else "running", s.get("kind")))
        extra["seconds_to_ready"] = ready
        by_kind = {}
        for e in ends.values():
            by_kind.setdefault(e["kind"], []).append(e["seconds"])
        extra["median_trial_s_by_kind"] = {k: statistics.median(v) for k, v in by_kind.items()}
        extra["dev_accuracy_by_kind"] = {}
        for k in by_kind:
            accs = [e["dev_accuracy"] for e in ends.values() if e["kind"] == k]
            extra["dev_accuracy_by_kind"][k] = statistics.median(accs)
    out = {"mode": a.mode, "n": a.n, "launch": a.launch, "warm_s": a.warm, "window_s": a.window,
           "command": a.command, **extra}
    tb = a.launch + a.warm + a.window
    first = {}
    for owner, start, _, _, _ in trials:
        first[owner] = min(first.get(owner, start), start)
    ta = max([a.launch + a.warm] + list(first.values()))
    complete = [t for t in trials if t[3] == "complete" and t[2] is not None]
    durations = [t[2] - t[1] for t in complete]
    out.update({"processes_started": len(first), "complete_total": len(complete),
                "failed_total": sum(t[3] == "failed" for t in trials),
                "ta": ta, "tb": tb, "counted_s": tb - ta})
    if not durations or tb - ta <= 1:
        out["trials_per_hour"] = None
        out["why"] = ("no complete trial" if not durations else
                      "a process started its first trial only after the window closed")
        print(json.dumps(out, indent=1))
        return 0
    med = statistics.median(durations)
    frac, in_window = 0.0, 0
    for _, start, end, state, _ in trials:
        if state == "complete" and end is not None:
            overlap = min(end, tb) - max(start, ta)
            if overlap > 0:
                frac += overlap / max(end - start, 1e-9)
            in_window += ta < end <= tb
        elif state != "failed" and start < tb:
            frac += min(1.0, (tb - max(start, ta)) / med)
    out.update({"trials_per_hour": frac / (tb - ta) * 3600, "trials_counted": frac,
                "completed_in_window": in_window, "median_trial_s": med,
                "shortened": tb - ta < 0.75 * a.window})
    print(json.dumps(out, indent=1))
    return 0


# ------------------------------------------------------------------------------------ render

def load(dirs, pattern):
    found = {}
    for d in dirs:
        for p in sorted(glob.glob(os.path.join(d, pattern))):
            found[os.path.basename(p)] = p
    return found


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def read_lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except Exception:  # noqa: BLE001
        return []


def fmt(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def memory(dirs, spans):
    samples = []
    for d in dirs:
        p = os.path.join(d, "gpu-mem.log")
        if not os.path.exists(p):
            continue
        for line in open(p):
            parts = line.split()
            if len(parts) < 2:
                continue
            try:
                t = float(parts[0])
                mem = float(parts[1].split(",")[0])
            except ValueError:
                continue
            samples.append((t, mem))
    if not samples:
        return None, {}
    idle = samples[0][1]
    per = {}
    for s in spans:
        inside = [m for t, m in samples if s["start"] <= t <= s["end"] + 1]
        if inside:
            per[s["part"]] = max(inside)
    return idle, per


def launches(cupti, steps):
    """Launches per optimizer step from two step counts' difference, per counted program."""
    s1, s2, k = steps.get("s1"), steps.get("s2"), steps.get("k")
    if not (s1 and s2):
        return []

    def total(name):
        lines = read_lines(cupti[name]) if name in cupti else []
        if not lines:
            return None
        keys = ("kernel_launch_calls", "graph_launch_calls", "kernels_executed", "memcpy",
                "memset")
        return {key: sum(l.get(key, 0) for l in lines) for key in keys}

    rows = []
    for label, stem, per in (
            ("pets train, one design (K = 1): mam preset", "train-k1", 1),
            (f"pets packed, K = {k} designs in one pack", f"pack-k{k}", k),
            ("PyTorch + PEFT LoRA r=8 (one design)", "torch-lora", 1),
            ("PyTorch MAM (bench/reference.py blocks, one design)", "torch-mam", 1)):
        a, b = total(f"cupti-{stem}-s{s1}.jsonl"), total(f"cupti-{stem}-s{s2}.jsonl")
        if a is None or b is None:
            if stem.startswith("torch") and a is None and b is None:
                continue
            rows.append((label, None, None, None, None, "not measured (no counts written)"))
            continue
        d = {key: (b[key] - a[key]) / (s2 - s1) for key in a}
        rows.append((label, d["kernel_launch_calls"], d["graph_launch_calls"],
                     d["kernels_executed"], per, ""))
    return rows


def render(a):
    dirs = [a.dir] + (a.extra or [])
    files = load(dirs, "*.json")
    jsonl = load(dirs, "*.jsonl")
    get = lambda name: read_json(files[name]) if name in files else None
    env = get("env.json") or {}
    parts = []
    spans = []
    for d in dirs:
        parts += read_lines(os.path.join(d, "parts.jsonl"))
        spans += read_lines(os.path.join(d, "spans.jsonl"))
    status = {p["part"]: p for p in parts}
    idle, mem = memory(dirs, spans)
    pack = get("pack.json")
    modes = {"pets": {}, "torch": {}}
    for name, path in files.items():
        m = re.fullmatch(r"(pets|torch)-(\d+)\.json", name)
        if m:
            modes[m.group(1)][int(m.group(2))] = read_json(path)
    mps = (get("mps.json") or {}).get("mps")

    L = []
    w = L.append
    w("# Many candidates at once: trials per hour on one GPU (issue 21)")
    w("")
    w(f"Generated by `scripts/gpu-bench-pack.sh` (rendered by `bench/pack_report.py`), "
      f"{env.get('date', '?')}.")
    w("")
    w(f"- GPU: {env.get('gpu', '?')} (name, driver, memory)")
    w(f"- CPU: {env.get('cpu', '?')}, {env.get('cpus', '?')} cores")
    w(f"- pets: {env.get('pets', '?')}; PyTorch {env.get('torch', '?')} (CUDA "
      f"{env.get('torch_cuda', '?')}), transformers {env.get('transformers', '?')}, "
      f"peft {env.get('peft', '?')}, Python {env.get('python', '?')}")
    w(f"- MPS for the one-trial-per-process runs: {'on' if mps else 'off (not started)' if mps == 0 else '?'}")
    w("")
    w("**What a trial is.** " + TRIAL_WORDS)
    w("")

    # ---- verdict
    pets_best = best(modes["pets"])
    torch_best = best(modes["torch"])
    packed = pack.get("trials_per_hour") if pack else None
    w("## Verdict")
    w("")
    w("| target (issue 21) | measured | |")
    w("|---|---|---|")
    wall = pack.get("wall_s") if pack else None
    wanted = pack.get("wanted", 200) if pack else 200
    done = pack is not None and pack.get("complete") == wanted and pack.get("rc") == 0
    if pack:
        w(f"| {wanted}-trial MAM-space search ≤ 90 s wall | {fmt(wall, 1)} s, {pack.get('complete')} "
          f"complete of {pack.get('trials')} ({pack.get('failed')} failed) | "
          f"{verdict(done and wall <= 90 and wanted >= 200)} |")
    else:
        w(f"| 200-trial MAM-space search ≤ 90 s wall | not run ({why(status, 'pack')}) | not shown |")
    for label, other, target in (("pets one trial per process (best count)", pets_best, 3),
                                  ("PyTorch one trial per process (best count)", torch_best, 5)):
        if packed and other and other[1]:
            ratio = packed / other[1]
            w(f"| packed ≥ {target}× {label} | {fmt(packed)} / {fmt(other[1])} trials/h "
              f"(N = {other[0]}) = **{ratio:.2f}×** | {verdict(ratio >= target)} |")
        else:
            w(f"| packed ≥ {target}× {label} | not measured | not shown |")
    w("")
    w(f"Packed trials per hour are the {wanted}-trial search's: complete trials / the command's whole "
      "wall time (start-up, the sampler's generation barriers and the reports included); the "
      "one-trial-per-process rates are steady-state windows (start-up excluded), which favours "
      "them.")
    w("")

    # ---- packed
    w("## 1. pets packed")
    w("")
    if pack:
        w(f"K = {pack.get('k')} trials per pack, J = {pack.get('j')} claim loops (CUDA streams) "
          f"in one process, generations of {pack.get('gen')} designs (NSGA-II waits for a "
          "generation's results before proposing the next, so a generation holds K·J designs).")
        w("")
        w("| wall | complete | failed | trials/h (wall) | trials/h (first start → last end) | median trial | best / median dev acc | max GPU memory |")
        w("|---|---|---|---|---|---|---|---|")
        w(f"| {fmt(wall, 1)} s | {pack.get('complete')} | {pack.get('failed')} | "
          f"{fmt(packed)} | {fmt(pack.get('trials_per_hour_span'))} | "
          f"{fmt(pack.get('median_trial_s'), 1)} s | {fmt(pack.get('best_dev_accuracy'), 4)} / "
          f"{fmt(pack.get('median_dev_accuracy'), 4)} | {mib(mem.get('pack'))} |")
        if pack.get("errors"):
            w("")
            w("Failed trials' errors (first 5 distinct): " +
              "; ".join(f"`{e}`" for e in pack["errors"]))
        if pack.get("rc"):
            w("")
            w(f"The search exited with status {pack['rc']} (124: stopped at the 150 s limit).")
        w("")
        w(f"Command: `{pack.get('command')}`")
    else:
        w(f"Not run: {why(status, 'pack')}.")
    w("")

    # ---- per process
    for mode, title, part in (("pets", "2. pets, one trial per process under MPS", "pets"),
                              ("torch", "3. PyTorch, one trial per process under MPS", "torch")):
        w(f"## {title}")
        w("")
        runs = modes[mode]
        b = best(runs)
        if not runs:
            w(f"Not run: {why(status, part + '-1')}.")
            w("")
            continue
        extra_col = " | median trial by kind | median dev acc by kind" if mode == "torch" else ""
        w("| processes | trials/h | trials counted | completed in window | window | median trial | processes started | failed | max GPU memory" + extra_col + " |")
        w("|---|---|---|---|---|---|---|---|---" + ("|---|---" if mode == "torch" else "") + "|")
        for n in sorted(runs):
            r = runs[n] or {}
            mark = " **best**" if b and n == b[0] else ""
            tail = ""
            if mode == "torch":
                tail = (" | " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                          (r.get("median_trial_s_by_kind") or {}).items()) +
                        " | " + ", ".join(f"{k} {v:.3f}" for k, v in
                                          (r.get("dev_accuracy_by_kind") or {}).items()))
            rate = fmt(r.get("trials_per_hour")) if r.get("trials_per_hour") else \
                f"— ({r.get('why', 'failed')})"
            w(f"| {n}{mark} | {rate} | {fmt(r.get('trials_counted'), 1)} | "
              f"{r.get('completed_in_window', '—')} | {fmt(r.get('counted_s'), 1)} s"
              f"{' (shortened)' if r.get('shortened') else ''} | "
              f"{fmt(r.get('median_trial_s'), 1)} s | {r.get('processes_started', '—')}/{n} | "
              f"{r.get('failed_total', '—')} | {mib(mem.get(f'{mode}-{n}'))}{tail} |")
        for n in (1, 4, 8, 16):
            if n not in runs and f"{part}-{n}" in status:
                cols = 11 if mode == "torch" else 9
                w(f"| {n} | not run: {why(status, f'{part}-{n}')} |" + " |" * (cols - 2))
        w("")
        first = next(iter(runs.values())) or {}
        w(f"A window opens {first.get('warm_s')} s after the N processes are launched together "
          "(or later, once every process has started its first trial) and closes at "
          f"launch + {first.get('warm_s')} + {first.get('window_s')} s, when they are stopped. "
          "A trial counts by the share of its run inside the window; one still running at the "
          "close by its time inside over the median trial's duration (at most 1).")
        if mode == "torch" and first.get("seconds_to_ready"):
            L[-1] += (f" Start-up to the first trial (imports, model, tokenising): "
              f"{max(x for x in first['seconds_to_ready'] if x is not None):.1f} s at most.")
        w("")
        w(f"Command (each process): `{first.get('command')}`")
        w("")

    # ---- launches
    w("## 4. CUDA launches per optimizer step")
    w("")
    steps = get("cupti-steps.json") or {}
    rows = launches(jsonl, steps)
    st = status.get("cupti")
    if st and st["status"] != "ok" and not any(r[1] is not None for r in rows):
        head = "Not measured" if st["status"] == "not measured" else f"Not measured ({st['status']})"
        w(f"{head}{': ' + st['note'] if st['note'] else ''}.")
    elif not rows:
        w("Not measured (no counts).")
    else:
        w(f"`bench/cupti_count.c` (a CUPTI injection library, `CUDA_INJECTION64_PATH`) counts "
          f"launch calls (driver `cuLaunchKernel*`, `cuLaunchCooperativeKernel*`; runtime "
          f"`cudaLaunchKernel*`; graph launches apart) and the kernels that ran (activity "
          f"records). Per step = (count at {steps.get('s2')} steps − count at {steps.get('s1')})"
          f" / {steps.get('s2', 0) - steps.get('s1', 0)}, so start-up, the frozen cache and "
          f"the dev evaluation cancel.")
        w("")
        w("| program | launch calls / step | graph launches / step | kernels run / step | per design and step (kernels) | |")
        w("|---|---|---|---|---|---|")
        for label, calls, graphs, kernels, per, note in rows:
            per_design = kernels / per if kernels is not None and per else None
            w(f"| {label} | {fmt(calls, 1)} | {fmt(graphs, 1)} | {fmt(kernels, 1)} | "
              f"{fmt(per_design, 1)} | {note} |")
        w("")
        w("Commands: `pets train --design search_spaces/presets/mam.ron --device cuda --task mr "
          "--epochs 1 --max-steps S`; `pets search ... --pack K --trials K --initial K "
          "--population K --jobs 1 --max-steps S --rungs 1`; `bench/torch_trials.py --kind "
          "lora|mam --max-trials 1 --steps S`.")
    w("")

    # ---- packed trials retrained alone
    w("## Packed trials retrained alone")
    w("")
    retrained = read_lines(os.path.join(a.dir, "retrain.jsonl"))
    if retrained:
        same = sum(1 for r in retrained if abs(r["packed"] - r["alone"]) < 1e-9)
        w(f"{len(retrained)} trials of the packed search (first, middle and last complete) "
          "trained again alone by `pets train --design <trial>/design.ron --seed <its seed> "
          f"--epochs 2 --max-steps {retrained[0]['steps']}`: {same} of {len(retrained)} give "
          "the packed dev accuracy exactly.")
        w("")
        w("| trial | design | seed | steps | dev accuracy packed | alone | difference |")
        w("|---|---|---|---|---|---|---|")
        for r in retrained:
            w(f"| {r['trial']} | {r['design']} | {r['seed']} | {r['steps']} | "
              f"{r['packed']:.4f} | {r['alone']:.4f} | {r['alone'] - r['packed']:+.4f} |")
    else:
        w("Not run (see the parts table).")
    w("")

    # ---- memory and parts
    w("## GPU memory and the parts")
    w("")
    if idle is not None:
        w(f"`nvidia-smi --query-gpu=memory.used`, sampled every second; {mib(idle)} before the "
          f"first part. Largest sample per part: " +
          ", ".join(f"{k} {mib(v)}" for k, v in mem.items()) + ".")
    else:
        w("No memory samples.")
    w("")
    w("| part | status | note | at (s from start) |")
    w("|---|---|---|---|")
    for p in parts:
        w(f"| {p['part']} | {p['status']} | {p['note']} | {p['at']:.0f} |")
    w("")
    text = "\n".join(L) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out}")
    return 0


def best(runs):
    rated = [(n, r["trials_per_hour"]) for n, r in runs.items() if r and r.get("trials_per_hour")]
    return max(rated, key=lambda x: x[1]) if rated else None


def verdict(ok):
    return "**met**" if ok else "**not met**"


def why(status, part):
    p = status.get(part)
    if not p:
        return "not in this run"
    return p["status"] + (f": {p['note']}" if p["note"] else "")


def mib(x):
    return "—" if x is None else f"{x / 1024:.1f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("store-summary")
    s.add_argument("--store", required=True)
    for k in ("start", "end"):
        s.add_argument(f"--{k}", type=float, required=True)
    for k in ("rc", "wanted", "k", "j", "gen"):
        s.add_argument(f"--{k}", type=int, required=True)
    s.add_argument("--command", default="")
    wdw = sub.add_parser("window")
    wdw.add_argument("--store")
    wdw.add_argument("--jsonl")
    wdw.add_argument("--launch", type=float, required=True)
    wdw.add_argument("--warm", type=float, required=True)
    wdw.add_argument("--window", type=float, required=True)
    wdw.add_argument("--n", type=int, required=True)
    wdw.add_argument("--mode", required=True)
    wdw.add_argument("--command", default="")
    r = sub.add_parser("render")
    r.add_argument("--dir", required=True)
    r.add_argument("--extra", nargs="*", help="more output folders (later ones win)")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    return {"store-summary": store_summary, "window": window, "render": render}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
