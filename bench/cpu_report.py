#!/usr/bin/env python3
"""Driver of scripts/bench-cpu.sh: regenerates reports/bench.md on this CPU in one run.

1. `pets bench` (fp32) of lora, scaled_parallel_adapter and mam against bench/reference.py:
   the train-step table (it also writes each design's plan for step 3).
2. The same with `--frozen-bf16` (pets' frozen products in bf16), for its own section.
3. End to end, side by side: one epoch of `mr` by `pets train` (its defaults: length
   bucketing, evaluation batches of 128) and by bench/e2e.py (PyTorch, dynamic padding; PEFT
   for lora), design by design, alternating which goes first.
4. Bucketing's accuracy effect (pets with and without it, seeds 0-2) and bf16's (pets fp32
   and bf16, seeds 0-2), on lora.

0. Before measuring, it waits (at most --settle-max seconds) for the 1-minute load average to
   fall below --settle-load (scripts/bench-cpu.sh builds just before), then runs
   scripts/cpu-peak.sh (runs/bench-cpu/peak.txt: the fp32 peak the "Arithmetic" table divides
   by). Each stage records its wall time, the machine's busy and steal CPU time (/proc/stat) and
   this process's own plus its children's CPU time, so the report can say from measurements how
   much of the cores other processes took.

Every child's output goes to runs/bench-cpu/; the report is assembled from those files, so
`--report-only` re-renders it without training.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

DESIGNS = ["lora", "scaled_parallel_adapter", "mam"]
PEFT_LORA = "12,24"  # search_spaces/presets/lora.ron: r 12, alpha 24 on query and value


def cpu_line():
    info = Path("/proc/cpuinfo").read_text()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines()
                  if l.startswith("model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines()
                  if l.startswith("flags")), [])
    keep = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                        "avx512_vnni", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(keep)}"


def load():
    return float(Path("/proc/loadavg").read_text().split()[0])


def settle(threshold, max_wait):
    """Waits (at most max_wait seconds) for the 1-minute load average to fall below threshold,
    e.g. after scripts/bench-cpu.sh's own `cargo build`: (load before, load after, seconds)."""
    before, started = load(), time.monotonic()
    while load() >= threshold and time.monotonic() - started < max_wait:
        time.sleep(5)
    return before, load(), time.monotonic() - started


def cpu_seconds():
    """(busy, steal) CPU-seconds of the whole machine since boot, from /proc/stat, and this
    process's own plus its finished children's CPU-seconds (what the others are measured
    against)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return (user + nice + system + irq + softirq) / hz, steal / hz, own


def run(cmd, log, env=None):
    """Runs cmd with its output in log; returns the wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def pets_train(a, design, seed, out, bf16=False, bucketing=True):
    """One `pets train` epoch (trained unless its metrics exist, or None when only reporting):
    (metrics, wall seconds)."""
    metrics = out / "metrics.json"
    if not metrics.exists():
        if a.report_only or getattr(a, "rendering", False):
            return None
        cmd = [a.pets, "--threads", str(a.threads), *(["--frozen-bf16"] if bf16 else []),
               "train", "--design", f"search_spaces/presets/{design}.ron", "--epochs", "1",
               "--seed", str(seed), "--quiet", "--out", str(out),
               *([] if bucketing else ["--no-bucketing"])]
        wall = run(cmd, out.parent / f"{out.name}.log")
        (out / "wall.json").write_text(json.dumps({"wall_seconds": wall, "load": load()}))
    m = json.loads(metrics.read_text())
    wall = json.loads((out / "wall.json").read_text())["wall_seconds"]
    return m, wall


def torch_train(a, design, seed, out):
    """One bench/e2e.py epoch, likewise: its JSON line, or None."""
    if not out.exists():
        if a.report_only or getattr(a, "rendering", False):
            return None
        cmd = [a.python, "bench/e2e.py", "--split-dir", str(a.work / "split"), "--model-dir",
               str(a.model_dir), "--seed", str(seed), "--threads", str(a.threads)]
        cmd += (["--peft-lora", PEFT_LORA] if design == "lora"
                else ["--plan", str(a.work / "plans" / design / "plan.json")])
        log = out.with_suffix(".log")
        run(cmd, log)
        out.write_text(log.read_text().strip().splitlines()[-1])
    return json.loads(out.read_text())


def step_bench(a, report, designs, bf16=False, rounds=7):
    if (a.work / report).exists():
        return
    plans = "plans-bf16" if bf16 else "plans"
    run([a.pets, "--threads", str(a.threads), *(["--frozen-bf16"] if bf16 else []), "bench",
         "--designs", ",".join(designs), "--python", a.python, "--rounds", str(rounds),
         "--work", str(a.work / plans), "--report", str(a.work / report)],
        a.work / report.replace(".md", ".log"))


def e2e(a, d, first="pets"):
    sides = [lambda: pets_train(a, d, 0, a.work / "e2e" / f"pets-{d}-seed0"),
             lambda: torch_train(a, d, 0, a.work / "e2e" / f"torch-{d}-seed0.json")]
    for side in (sides if first == "pets" else sides[::-1]):
        side()


def measure(a):
    """The stages, most needed first; those not started by --until (UTC HH:MM) are skipped."""
    w, e = a.work, a.work / "e2e"
    if not (w / "split" / "dev.tsv").exists():
        run([a.pets, "split", "--task", "mr", "--out-dir", str(w / "split")], w / "split.log")
    stages = [
        ("fp32 and bf16 peak", lambda: (w / "peak.txt").exists() or (w / "peak.txt").write_text(
            time.strftime("# %Y-%m-%d %H:%M UTC scripts/cpu-peak.sh\n", time.gmtime())
            + subprocess.run(["bash", "scripts/cpu-peak.sh"], capture_output=True, text=True,
                             check=True).stdout)),
        ("train step, fp32", lambda: step_bench(a, "step.md", DESIGNS)),
        ("end to end, lora", lambda: e2e(a, "lora", "torch")),
        *[(f"bucketing, lora seed {s}", lambda s=s: (
            pets_train(a, "lora", s, e / f"pets-lora-seed{s}"),
            pets_train(a, "lora", s, e / f"pets-lora-nobucket-seed{s}", bucketing=False)))
          for s in range(3)],
        ("train step, bf16", lambda: step_bench(a, "step-bf16.md", DESIGNS, True, 3)),
        *[(f"bf16, lora seed {s}", lambda s=s: pets_train(
            a, "lora", s, e / f"pets-lora-bf16-seed{s}", bf16=True)) for s in range(3)],
        ("end to end, scaled_parallel_adapter", lambda: e2e(a, "scaled_parallel_adapter")),
        ("end to end, mam", lambda: e2e(a, "mam", "torch")),
    ]
    for name, stage in stages:
        if a.until and time.strftime("%H:%M", time.gmtime()) >= a.until:
            print(f"skipped (past {a.until} UTC): {name}", file=sys.stderr)
            continue
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} {name} ...", file=sys.stderr)
        (busy0, steal0, own0), wall0 = cpu_seconds(), time.monotonic()
        stage()
        (busy1, steal1, own1), wall = cpu_seconds(), time.monotonic() - wall0
        ctx = json.loads((w / "context.json").read_text())
        ctx["load_end"] = load()
        ctx["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if wall > 1:  # a stage whose outputs existed already measured nothing
            ctx.setdefault("stages", []).append({
                "stage": name, "wall_s": wall, "busy_s": busy1 - busy0,
                "own_s": own1 - own0, "steal_s": steal1 - steal0})
        (w / "context.json").write_text(json.dumps(ctx))


SEEDS_HEAD = ["| run | dev acc. seeds 0/1/2 (%) | median | mean | test acc. seeds 0/1/2 (%) "
              "| seeds run |", "|---|---|---|---|---|---|"]


def seeds_row(name, runs):
    done = [r for r in runs if r is not None]
    if not done:
        return f"| {name} | not run (stage skipped) | | | | |"
    cells = []
    for key in ("accuracy", "test_accuracy"):
        acc = [m[key] * 100 if key in m else float("nan") for m, _ in done]
        cells.append(" / ".join([f"{x:.2f}" for x in acc] + ["–"] * (len(runs) - len(done))))
        if key == "accuracy":
            cells.append(f"{statistics.median(acc):.2f} | {statistics.mean(acc):.2f}")
    return f"| {name} | {' | '.join(cells)} | {len(done)} |"


def seeds_note(runs):
    """One sentence when the seeds' dev accuracies coincide, so that nobody reads it as the
    seeds not having run: how many dev sentences that is, and that the rest differs."""
    done = [m for m, _ in (r for r in runs if r is not None)]
    if len(done) < 2 or len({m["accuracy"] for m in done}) > 1:
        return []
    n = done[0]["dev_examples"]
    right = round(done[0]["accuracy"] * n)
    losses = " / ".join(f"{m['epochs'][-1]['train_loss']:.4f}" for m in done)
    return ["", f"The default runs' dev accuracies coincide ({right}/{n} dev sentences right for "
            f"every seed) although the seeds' runs differ: their training losses are {losses} "
            "and their test accuracies differ (column above)."]


def section(path, title, level):
    """A `pets bench` report as a section: its title replaced, its headings one level down."""
    if not path.exists():
        return [title, "", "Not run in this run (its stage was skipped by --until)."]
    text = path.read_text().split("\n", 1)[1]
    text = text.replace("\n## Verdict", "\n" + "#" * (level + 1) + " Verdict")
    return [title, text]


def e2e_rows(a):
    rows, verdicts, info, ratios = [], [], None, {}
    for d in DESIGNS:
        p = pets_train(a, d, 0, a.work / "e2e" / f"pets-{d}-seed0")
        t = torch_train(a, d, 0, a.work / "e2e" / f"torch-{d}-seed0.json")
        if p is None or t is None:
            rows.append(f"| {d} | {'not run' if p is None else 'done'} | "
                        f"{'not run' if t is None else 'done'} | | | | | | | |")
            verdicts.append(f"- **{d}**: not measured end to end in this run (its stage "
                            "was skipped by --until).")
            continue
        (m, wall), info = p, t
        pr, tr = m["train_examples"] / m["train_seconds"], t["train_examples"] / t["train_seconds"]
        diff = (m["accuracy"] - t["accuracy"]) * 100
        ratios[d] = (pr / tr, diff)
        rows.append(f"| {d} | {pr:.1f} | {tr:.1f} | {pr / tr:.2f}× | {wall:.0f} | "
                    f"{t['wall_seconds']:.0f} | {t['wall_seconds'] / wall:.2f}× | "
                    f"{m['accuracy'] * 100:.2f} | {t['accuracy'] * 100:.2f} | {diff:+.2f} |")
        ok_speed, ok_acc = pr / tr >= 1.5, diff >= -0.5
        miss = ("" if ok_speed else f" by {1.5 / (pr / tr):.2f}×: pets would need "
                f"{1.5 * tr:.1f} sentences/s, i.e. {m['train_seconds'] / (1.5 / (pr / tr)):.1f} s "
                f"of training instead of {m['train_seconds']:.1f} s")
        n = m["dev_examples"]
        se = 100 * (m["accuracy"] * (1 - m["accuracy"]) / n) ** 0.5
        verdicts.append(f"- **{d}**: throughput {pr / tr:.2f}× ({'meets' if ok_speed else 'misses'}"
                        f" 1.5×{miss}); dev accuracy {diff:+.2f} pt against PyTorch "
                        f"({'not more than' if ok_acc else 'more than'} 0.5 pt below it; one dev "
                        f"accuracy on {n} sentences has a standard error of {se:.1f} pt, so a "
                        "single seed cannot settle 0.5 pt)")
    return rows, verdicts, info, ratios


def step_rows(path):
    """A `pets bench` report's train-step medians: {design: (pets ms, torch ms)}."""
    if not path.exists():
        return {}
    rows, cols = {}, None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "train speed-up" in cells:
            cols = cells.index("train pets ms"), cells.index("train torch ms")
        elif cols and len(cells) > max(cols) and cells[0] and not cells[0].startswith("-"):
            try:
                rows[cells[0].split(" (")[0]] = tuple(float(cells[i].split()[0]) for i in cols)
            except ValueError:
                pass
    return rows


def step_verdicts(path):
    """A `pets bench` report's verdict lines, shortened: {design: "0.92×, missed: ..."}."""
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        m = re.match(r"- \*\*(.+?)\*\*: (.*)$", line)
        if not m:
            continue
        v = m.group(2)
        if (r := re.search(r"target missed: ([\d.]+)× < [\d.]+×; (.*)\.$", v)):
            out[m.group(1)] = f"{r.group(1)}×, missed: {r.group(2)}"
        elif (r := re.search(r"target met: ([\d.]+)×", v)):
            out[m.group(1)] = f"{r.group(1)}× met"
        if not v.startswith("losses agree"):
            out[m.group(1)] = out.get(m.group(1), "") + f" ({v.split(';')[0]})"
    return out


def bench_batches(a, step_md):
    """The bench's batches as (real tokens, padded length) per sentence: the first 128 sentences
    of runs/bench-cpu/split/train.tsv in 4 batches of 32, tokenised as pets does (max_len 64);
    None unless their padded lengths are the ones `pets bench` reports."""
    m = re.search(r"padded lengths \[([\d, ]+)\]", step_md.read_text()) if step_md.exists() else None
    train = a.work / "split" / "train.tsv"
    if not m or not train.exists():
        return None
    try:
        import tokenizers
    except ImportError:
        return None
    want = [int(x) for x in m.group(1).split(",")]
    tok = tokenizers.Tokenizer.from_file(str(a.model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(64)
    texts = [l.split("\t")[0] for l in train.read_text().split("\n")[1:] if l][:32 * len(want)]
    lens = [len(tok.encode(t).ids) for t in texts]
    batches = [lens[i * 32:(i + 1) * 32] for i in range(len(want))]
    if [max(b) for b in batches] != want:
        return None
    return batches


def step_flops(a, design, batches):
    """Matrix-product FLOPs of one training step, averaged over the bench's batches:
    {"pets": ..., "torch": ...} in GFLOP. Frozen linears: pets multiplies real rows only, the
    reference every padded position; forward, plus the input gradients that reach a trainable
    tensor (in the lowest module layer: below an attention module, the attention output and the
    FFN; below FFN-only modules, none). Attention (QKᵀ, PV and their gradients) on padded
    lengths on both sides, keys lengthened by a prefix; the modules' own products."""
    cfg = json.loads((a.model_dir / "config.json").read_text())
    d, f, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    plan = json.loads((a.work / "plans" / design / "plan.json").read_text())
    lin = 2 * (4 * d * d + 2 * d * f)            # q, k, v, o, FFN up and down, per token
    low = min(l for m in plan["modules"] for l in m["layers"])
    attn_site = any(m["site"] != "ffn" for m in plan["modules"] if low in m["layers"])
    bwd_low = 2 * (d * d + 2 * d * f) if attn_site else 0
    bwd = bwd_low + (n - 1 - low) * lin        # layers above the lowest: every input gradient
    prefix = sum(m["form"]["Prefix"]["l"] for m in plan["modules"] if "Prefix" in m["form"])
    mod = 0
    for m in plan["modules"]:
        form = next(iter(m["form"].values()))
        if "r" in form:  # LoRA and bottleneck: down and up, forward and two gradients
            mod += 3 * 2 * 2 * d * form["r"] * len(m["layers"])
    real = sum(map(sum, batches)) / len(batches)
    padded = sum(32 * max(b) for b in batches) / len(batches)
    sq = sum(32 * max(b) * (max(b) + prefix) for b in batches) / len(batches)
    attn_layers_bwd = n - low - (0 if attn_site else 1)
    attention = (4 * (n - low) + 8 * attn_layers_bwd) * d * sq + 4 * d * sq * low
    frozen_fwd = n * lin
    return {"pets": ((frozen_fwd + bwd) * real + attention + mod * padded) / 1e9,
            "torch": ((frozen_fwd + bwd) * padded + attention + mod * padded) / 1e9,
            "real": real, "padded": padded}


def peak(a):
    """One core's fp32 and bf16 peak from runs/bench-cpu/peak.txt (one or more runs of
    scripts/cpu-peak.sh): the highest of its repeats, with their range, GFLOP/s, or None."""
    path = a.work / "peak.txt"
    if not path.exists():
        return None
    text = path.read_text()
    fp32 = [float(x) for x in re.findall(r"fp32 FMA zmm: ([\d.]+) GFLOP/s", text)]
    if not fp32:
        return None
    when = re.findall(r"# (\S+ \S+ UTC)", text)
    return {"fp32": max(fp32), "low": min(fp32), "n": len(fp32),
            "when": (when[0] + (f" to {when[-1][11:]}" if when[-1] != when[0] else ""))
            if when else None}


def flops_section(a):
    """Achieved rate of each side's training step: FLOPs of its matrix products per median."""
    batches = bench_batches(a, a.work / "step.md")
    fp = step_rows(a.work / "step.md")
    if not batches or not fp:
        return []
    pk = peak(a)
    cores = a.threads
    md = ["", "### Arithmetic: what each side multiplies, and how fast", "",
          "Matrix-product FLOPs per training step on the bench's batches (`step_flops` in "
          "bench/cpu_report.py: frozen linears forward plus the input gradients that reach a "
          "trainable tensor, pets on real rows only and the reference on every padded position; "
          "attention on padded lengths; the modules), divided by the median step times above."
          + (f" Peak: {pk['fp32']:.0f} GFLOP/s per core fp32 (FMA), {cores * pk['fp32']:.0f} "
             f"for {cores} cores: the highest of {pk['n']} repeats of `scripts/cpu-peak.sh` "
             f"({a.work}/peak.txt" + (f", {pk['when']}" if pk["when"] else "") + f"; range "
             f"{pk['low']:.0f}–{pk['fp32']:.0f}), timed by the thread's own CPU time, so "
             "time-slicing by other processes does not count, though their load can lower the "
             "clock." if pk else ""), "",
          "| design | real tokens / padded positions per step | pets GFLOP per step | torch GFLOP "
          "per step | pets GFLOP/s | torch GFLOP/s |" + (" pets % of peak | torch % of peak |"
                                                        if pk else ""),
          "|---|---|---|---|---|---|" + ("---|---|" if pk else "")]
    for d in DESIGNS:
        if d not in fp:
            continue
        fl = step_flops(a, d, batches)
        pr, tr = fl["pets"] / (fp[d][0] / 1e3), fl["torch"] / (fp[d][1] / 1e3)
        row = (f"| {d} | {fl['real']:.0f} / {fl['padded']:.0f} | {fl['pets']:.1f} | "
               f"{fl['torch']:.1f} | {pr:.0f} | {tr:.0f} |")
        if pk:
            row += f" {100 * pr / (cores * pk['fp32']):.0f}% | {100 * tr / (cores * pk['fp32']):.0f}% |"
        md.append(row)
    return md


def load_lines(a, ctx):
    """What the run measured about sharing the cores, in words chosen from the numbers."""
    s = ctx.get("settle")
    if s:
        start = (f"the 1-minute load average was {s['before']:.2f} right after this script's "
                 f"own `cargo build` and `pets fetch`; the run waited {s['waited_s']:.0f} s (at "
                 f"most {s['max_wait_s']:.0f}) for it to fall below {s['threshold']:.2f} and "
                 f"started at {s['after']:.2f}"
                 + ("" if s["after"] < s["threshold"] else " (it had not settled)"))
    else:
        start = (f"the 1-minute load average was {ctx['load_start']:.2f} at the start, read "
                 "right after this script's own `cargo build` and `pets fetch` (whose load it "
                 "includes; this run did not wait for it to settle)")
    walls = sorted(json.loads(p.read_text())["load"] for p in (a.work / "e2e").glob("*/wall.json"))
    after = (f"; read after each `pets train` run it was {walls[0]:.2f}–{walls[-1]:.2f}"
             if walls else "")
    lines = [f"- Load: {start}; it was {ctx['load_end']:.2f} at the end{after}. A run of this "
             f"report on {a.threads} threads holds it near {a.threads} by itself, so the load "
             "average alone cannot show whether other processes shared the cores."]
    stages = ctx.get("stages", [])
    if not stages:
        lines.append("- Other processes' CPU time: " + (
            "no stage measured anything in this run." if "settle" in ctx else
            f"not recorded for this run (its outputs in `{a.work}/` predate "
            "bench/cpu_report.py's recording of it)."))
        return lines
    wall = sum(x["wall_s"] for x in stages)
    others = sum(max(0.0, x["busy_s"] - x["own_s"]) for x in stages)
    steal = sum(x["steal_s"] for x in stages)
    avail = wall * (os.cpu_count() or 1)
    pct = 100 * others / avail
    verdict = ("other processes used almost none of the cores" if pct < 5 else
               "**the cores were shared**, so the wall-clock times below include waiting for "
               "them")
    lines.append(f"- Other processes' CPU time: during the {len(stages)} stages measured here "
                 f"({wall / 60:.1f} min), the machine's busy CPU time (/proc/stat) less this "
                 f"run's own (bench/cpu_report.py and its children) was {others:.0f} of "
                 f"{avail:.0f} CPU-seconds ({pct:.1f}%), and the hypervisor's steal time "
                 f"{steal:.0f} s ({100 * steal / avail:.1f}%): {verdict}.")
    return lines


def targets(a, step, e2e):
    """The issue's targets, met or missed, and by how much."""
    md = ["## Targets", "", "| target | " + " | ".join(DESIGNS) + " |",
          "|---|" + "---|" * len(DESIGNS)]
    cells = [step.get(d, "not run") for d in DESIGNS]
    md.append("| training step, fp32, ≥ 1.25× | " + " | ".join(cells) + " |")
    speed, acc = [], []
    for d in DESIGNS:
        if d not in e2e:
            speed.append("not run")
            acc.append("not run")
            continue
        r, diff = e2e[d]
        speed.append(f"{r:.2f}× met" if r >= 1.5 else f"{r:.2f}×, missed by {1.5 / r:.2f}×")
        acc.append(f"{diff:+.2f} pt {'met' if diff >= -0.5 else 'missed'}")
    md.append("| end to end, sentences/s, ≥ 1.5× | " + " | ".join(speed) + " |")
    md.append("| end to end, dev accuracy at most 0.5 pt below PyTorch's | " + " | ".join(acc)
              + " |")
    missed = any("missed" in c for c in cells + speed + acc)
    if missed:
        md += ["", "Where pets' time goes in the step on this CPU, and what would have to change "
               "to meet the missed targets: `reports/bench-cpu-profile.md`."]
    return md + [""]


def write_report(a):
    a.rendering = True  # from here on, a missing run (a stage skipped by --until) stays missing
    w = a.work
    ctx = json.loads((w / "context.json").read_text())
    md = ["# pets vs PyTorch on the CPU: training step, end to end, bf16", "",
          f"Generated by `{a.command}` (bench/cpu_report.py) on "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          + (f" with `--report-only`, from the measurements already in `{w}/`"
             if a.report_only else "")
          + (f" (measured {ctx['started']}–{ctx['finished']})" if "finished" in ctx else "")
          + f"; every child's output is in `{w}/`. Where the time goes: "
          "`reports/bench-cpu-profile.md`.", "",
          f"- CPU: {ctx['cpu']}", *load_lines(a, ctx), ""]
    rows, verdicts, info, ratios = e2e_rows(a)
    md += targets(a, step_verdicts(w / "step.md"), ratios)
    md += section(w / "step.md", "## Training step, fp32 (`pets bench`)", 2)
    md += flops_section(a)
    md += ["", "## End to end: one epoch of `mr`, side by side", "",
           f"`pets --threads {a.threads} train --design search_spaces/presets/<design>.ron "
           "--epochs 1` (its defaults: batch 32, length bucketing, evaluation batches of 128, "
           "warm-up 6% then linear decay, clipping 1, AdamW lr 5e-4, max_len 64, seed 0) "
           f"against `bench/e2e.py` on {a.threads} threads (PyTorch with the same settings and "
           "the usual dynamic padding: shuffled batches padded to their longest sentence; "
           "PEFT's LoRA for lora, bench/reference.py's modules for the others), one after the "
           "other. Sentences/s = training sentences / training time (loading, tokenising and "
           "evaluation excluded on both sides); wall = the whole process.", "",
           "| design | pets sent./s | torch sent./s | speed-up | pets wall s | torch wall s "
           "| wall speed-up | pets dev acc. (%) | torch dev acc. (%) | acc. diff (pt) |",
           "|---|---|---|---|---|---|---|---|---|---|", *rows]
    if info:
        md += ["", f"PyTorch {info['torch']}, {info['threads']} threads (its default "
               f"intra-op pool set to {a.threads}), BLAS {info['blas']}, oneDNN "
               f"{info['mkldnn']}. Tokens per epoch: {info['padded_tokens']:,} padded positions "
               f"in PyTorch's batches for {info['real_tokens']:,} real tokens."]
    e = w / "e2e"
    runs = lambda tag: [pets_train(a, "lora", s, e / f"pets-lora{tag}-seed{s}") for s in range(3)]
    md += ["", *verdicts, "", "## Length bucketing's accuracy effect (lora, one epoch, 3 seeds)",
           "", "Accuracy only: `pets train` as above with `--seed` 0, 1, 2, with and without "
           "`--no-bucketing`, one run after another.",
           "", *SEEDS_HEAD,
           seeds_row("pets, bucketing (default)", runs("")),
           seeds_row("pets, --no-bucketing", runs("-nobucket")),
           *seeds_note(runs("")),
           "", "## bf16 frozen products (`--frozen-bf16`): a separate, opt-in setting", "",
           "pets' frozen linear products (x·Wᵀ forward, g·W backward) with W and x rounded to "
           "bf16 and fp32 accumulation (AVX512-BF16 `vdpbf16ps`, weights packed once); "
           "attention, the modules, norms, the optimizer and the rest stay fp32. Not the "
           "default, and not part of the fp32 comparison above.", ""]
    md += section(w / "step-bf16.md", "### Training step, bf16 (`pets --frozen-bf16 bench`)", 3)
    bf = step_rows(w / "step-bf16.md")
    fp = step_rows(w / "step.md")
    if bf and fp:
        cmp = ", ".join(f"{d} {bf[d][0]:.0f} ms against {fp[d][0]:.0f} ms fp32 "
                        f"({fp[d][0] / bf[d][0]:.2f}×)" for d in DESIGNS if d in bf and d in fp)
        md += ["", f"pets' own step with bf16 frozen products against its fp32 step above: {cmp}. "
               "Why, and what the bf16 path does and does not use on this CPU: "
               "`reports/bench-cpu-profile.md`."]
    md += ["", "### Accuracy, fp32 against bf16 (lora, one epoch, 3 seeds)", "",
           *SEEDS_HEAD,
           seeds_row("pets fp32 (bucketing)", runs("")),
           seeds_row("pets --frozen-bf16 (bucketing)", runs("-bf16")), ""]
    a.report.parent.mkdir(parents=True, exist_ok=True)
    a.report.write_text("\n".join(md))
    print(f"wrote {a.report}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pets", default="target/release/pets")
    p.add_argument("--python", default=".venv-bench/bin/python")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("runs/bench-cpu"))
    p.add_argument("--model-dir", type=Path,
                   default=Path.home() / ".cache/pets/models/minilm-l6")
    p.add_argument("--report", type=Path, default=Path("reports/bench.md"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--until", help="UTC HH:MM after which no further stage starts")
    p.add_argument("--settle-load", type=float, default=0.7,
                   help="wait for the 1-minute load average to fall below this before measuring")
    p.add_argument("--settle-max", type=float, default=90,
                   help="... but at most this many seconds")
    a = p.parse_args()
    a.command = "scripts/bench-cpu.sh"
    if not a.report_only:
        a.work.mkdir(parents=True, exist_ok=True)
        before, after, waited = settle(a.settle_load, a.settle_max)
        print(f"1-minute load {before:.2f} -> {after:.2f} after {waited:.0f} s", file=sys.stderr)
        if not (a.work / "context.json").exists():
            (a.work / "context.json").write_text(json.dumps({
                "load_start": after, "load_end": after, "cpu": cpu_line(),
                "python": platform.python_version(),
                "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "settle": {"before": before, "after": after, "waited_s": waited,
                           "threshold": a.settle_load, "max_wait_s": a.settle_max}}))
        measure(a)
    write_report(a)


if __name__ == "__main__":
    main()
