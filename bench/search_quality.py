#!/usr/bin/env python3
"""Writes reports/search-quality.md and its SVGs from the 12 studies of scripts/gpu-search-quality.sh.

Reads every `<study>.sqlite` under --stores (one study each, named q-<sampler>-<rule>-s<seed>)
and each study's confirmed.csv under --confirmed/<study>/ (what `pets search` wrote). Python's
standard library only.

Hypervolume is computed as `pets search` does for its hypervolume.svg (src/search/report/mod.rs):
complete search trials at full fidelity (the highest fidelity any of the studies reached), the
reference point accuracy 0.5 (REFERENCE_ACCURACY) and parameters = the budget, divided by
budget × 0.5, so 1 would be accuracy 1 at zero parameters. Against trials, the x axis counts
search trials in the order they ended; against wall time, it is the study's wall time as
src/search/limits.rs measures it (the union of its trials' intervals, baselines included) at the
moment each search trial ended. Each (sampler, rule) is drawn as its median over the search
seeds with the min-max band. The best design of a run is its confirmed search design with the
highest mean dev accuracy over the confirmation seeds; its mean test accuracy is reported.
"""
import argparse
import csv
import json
import os
import re
import sqlite3
import statistics

REFERENCE_ACCURACY = 0.5
NAME = re.compile(r"^q-(nsga2|random)-(sync|async)-s(\d+)$")
COLOURS = {("nsga2", "sync"): "#1f77b4", ("nsga2", "async"): "#17becf",
           ("random", "sync"): "#d62728", ("random", "async"): "#ff7f0e"}


def hypervolume(points, budget):
    """Area dominated by (accuracy, params) points, reference (0.5, budget), normalised."""
    useful = sorted((p, a) for a, p in points if a > REFERENCE_ACCURACY and p < budget)
    area, best = 0.0, REFERENCE_ACCURACY
    for p, a in useful:
        if a > best:
            area += (budget - p) * (a - best)
            best = a
    return area / (budget * (1 - REFERENCE_ACCURACY))


def union_until(spans, t):
    """Seconds of [start, end] spans' union that lie before time t."""
    total, open_ = 0.0, None
    for s, e in sorted((s, min(e, t)) for s, e in spans if s < t):
        if open_ and s <= open_[1]:
            open_ = (open_[0], max(open_[1], e))
        else:
            if open_:
                total += open_[1] - open_[0]
            open_ = (s, e)
    return total + (open_[1] - open_[0] if open_ else 0.0)


def load(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    name, settings = db.execute("SELECT name, settings FROM studies").fetchone()
    rows = db.execute("SELECT kind, state, accuracy, params, fidelity, started, finished "
                      "FROM trials ORDER BY id").fetchall()
    db.close()
    return name, json.loads(settings), rows


def study_curves(rows, budget, full):
    """Per ended search trial: (trials ended, wall seconds, hypervolume so far)."""
    spans = [(s, f if f is not None else s) for k, _, _, _, _, s, f in rows if k != "confirm"]
    search = sorted((r for r in rows if r[0] == "search" and r[6] is not None), key=lambda r: r[6])
    seen, curve = [], []
    for i, (_, state, acc, params, fid, _, fin) in enumerate(search, 1):
        if state == "complete" and acc is not None and fid == full:
            seen.append((acc, params))
        curve.append((i, union_until(spans, fin), hypervolume(seen, budget)))
    return curve


def best_confirmed(path):
    if not os.path.exists(path):
        return None
    rows = [r for r in csv.DictReader(open(path)) if r["kind"] == "search" and r["mean_test"]]
    return max(rows, key=lambda r: float(r["mean_dev"])) if rows else None


def spread(values, digits=3, scale=1.0):
    v = [x * scale for x in values]
    if not v:
        return "–"
    return f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}–{max(v):.{digits}f}]"


def svg(series, xlabel, path, xmax):
    """Median line and min-max band per group; series: {group: [(x, [y per seed])]}."""
    w, h, l, r, t, b = 720, 360, 64, 150, 16, 44
    ys = [y for pts in series.values() for _, vals in pts for y in vals]
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.05 or 0.01
    ylo, yhi = ylo - pad, yhi + pad
    sx = lambda x: l + (w - l - r) * x / xmax
    sy = lambda y: h - b - (h - t - b) * (y - ylo) / (yhi - ylo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for i in range(6):
        y = ylo + (yhi - ylo) * i / 5
        out.append(f'<line x1="{l}" x2="{w - r}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>'
                   f'<text x="{l - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
        x = xmax * i / 5
        out.append(f'<text x="{sx(x):.1f}" y="{h - b + 16}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{(l + w - r) / 2}" y="{h - 8}" text-anchor="middle">{xlabel}</text>'
               f'<text transform="translate(14 {(t + h - b) / 2}) rotate(-90)" '
               f'text-anchor="middle">hypervolume (full fidelity)</text>')
    for k, (group, pts) in enumerate(sorted(series.items())):
        c = COLOURS.get(group, "#555")
        upper = " ".join(f"{sx(x):.1f},{sy(max(v)):.1f}" for x, v in pts)
        lower = " ".join(f"{sx(x):.1f},{sy(min(v)):.1f}" for x, v in reversed(pts))
        med = " ".join(f"{sx(x):.1f},{sy(statistics.median(v)):.1f}" for x, v in pts)
        out.append(f'<polygon points="{upper} {lower}" fill="{c}" opacity="0.15"/>'
                   f'<polyline points="{med}" fill="none" stroke="{c}" stroke-width="2"/>')
        y = t + 18 * k + 10
        out.append(f'<line x1="{w - r + 10}" x2="{w - r + 30}" y1="{y}" y2="{y}" stroke="{c}" '
                   f'stroke-width="3"/><text x="{w - r + 36}" y="{y + 4}">{group[0]} {group[1]}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def step_at(curve, t):
    """Hypervolume of a (trials, wall, hv) curve at wall time t (0 before the first trial)."""
    hv = 0.0
    for _, w, v in curve:
        if w <= t:
            hv = v
    return hv


def verdict(a, b, name_a, name_b, pairs, paired_by="rule and search seed"):
    """A sentence comparing two lists of final hypervolumes (paired by rule and seed)."""
    ma, mb = statistics.median(a), statistics.median(b)
    wins = sum(x > y for x, y in pairs)
    overlap = min(a) <= max(b) and min(b) <= max(a)
    diff = ma - mb
    if diff > 0 and wins == len(pairs) and not overlap:
        word = f"beats {name_b} here"
    elif diff > 0:
        word = f"is ahead of {name_b} here, but not clearly (the seeds' ranges overlap)" if overlap \
            else f"is ahead of {name_b} here in median, though not in every paired run"
    elif diff < 0:
        word = f"does not beat {name_b} here: it is behind" + \
            (", within the seeds' ranges" if overlap else "")
    else:
        word = f"ties with {name_b} here"
    return (f"**{name_a} {word}**: median final hypervolume {ma:.4f} against {mb:.4f} "
            f"({diff:+.4f}, {100 * diff / mb:+.1f}%); {name_a} is higher in {wins} of "
            f"{len(pairs)} runs paired by {paired_by if len(pairs) > 3 else 'search seed'}" +
            f"; ranges [{min(a):.4f}–{max(a):.4f}] and [{min(b):.4f}–{max(b):.4f}].")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", required=True)
    ap.add_argument("--confirmed", required=True, help="folder of <study>/confirmed.csv")
    ap.add_argument("--out", required=True, help="writes OUT/search-quality.md, OUT/search-quality/")
    ap.add_argument("--device", help="default: the nvidia-smi line of quality.log beside --stores")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--version", help="default: the `pets --version` line of that log")
    ap.add_argument("--found", help="also write the 2 best confirmed designs (mean dev) here as RON")
    args = ap.parse_args()
    log = os.path.join(os.path.dirname(os.path.normpath(args.stores)), "quality.log")
    lines = open(log).read().splitlines() if os.path.exists(log) else []
    if args.device is None:
        args.device = next((l for l in lines if "MiB" in l), "?")
    if args.version is None:
        args.version = next((l for l in lines if l.startswith("pets ")), "pets")

    studies = []
    for f in sorted(os.listdir(args.stores)):
        if f.endswith(".sqlite"):
            name, settings, rows = load(os.path.join(args.stores, f))
            m = NAME.match(name)
            if m:
                studies.append((m.group(1), m.group(2), int(m.group(3)), name, settings, rows))
    if not studies:
        raise SystemExit("no q-<sampler>-<rule>-s<seed> studies under " + args.stores)
    full = max(r[4] for s in studies for r in s[5] if r[0] == "search" and r[1] == "complete")
    budget = {s[3]: budget_of(os.path.join(args.confirmed, s[3], "pareto.md")) for s in studies}
    runs = []
    for sampler, rule, seed, name, settings, rows in studies:
        curve = study_curves(rows, budget[name], full)
        search = [r for r in rows if r[0] == "search"]
        all_spans = [(r[5], r[6] or r[5]) for r in rows]
        best = best_confirmed(os.path.join(args.confirmed, name, "confirmed.csv"))
        runs.append(dict(sampler=sampler, rule=rule, seed=seed, name=name, curve=curve,
                         n=len(search), complete=sum(r[1] == "complete" for r in search),
                         wall=curve[-1][1] if curve else 0.0, hv=curve[-1][2] if curve else 0.0,
                         total=union_until(all_spans, float("inf")), best=best))
    groups = sorted({(r["sampler"], r["rule"]) for r in runs})
    by = {g: sorted((r for r in runs if (r["sampler"], r["rule"]) == g), key=lambda r: r["seed"])
          for g in groups}
    seeds = sorted({r["seed"] for r in runs})
    ntrials = min(len(r["curve"]) for r in runs)
    t_equal = min(r["wall"] for r in runs)
    xmax_wall = max(r["wall"] for r in runs)

    figs = os.path.join(args.out, "search-quality")
    os.makedirs(figs, exist_ok=True)
    svg({g: [(k, [r["curve"][k - 1][2] for r in by[g]]) for k in range(1, ntrials + 1)]
         for g in groups}, "search trials ended", os.path.join(figs, "hv-trials.svg"), ntrials)
    grid = [xmax_wall * i / 200 for i in range(201)]
    svg({g: [(t, [step_at(r["curve"], t) for r in by[g]]) for t in grid] for g in groups},
        "study wall time (s)", os.path.join(figs, "hv-wall.svg"), xmax_wall)

    md = ["# Search quality: nsga2 against random, synchronous against asynchronous promotion", "",
          "Generated by `bash scripts/gpu-search-quality.sh` (the GPU runs, then `python3 "
          "bench/search_quality.py` on their stores; rerun the report alone with `python3 "
          "bench/search_quality.py --stores reports/search-quality/stores --confirmed "
          "reports/search-quality/studies --out reports`; each study's own reports, as `pets "
          "search` wrote them, are under reports/search-quality/studies/).", "",
          f"- Device: {args.device}; `{args.version or 'pets'}`; all {len(runs)} studies ran at "
          f"once on it (each `pets search --jobs {args.jobs}`, under MPS), so wall times are "
          "those of a shared GPU, alike for every study.",
          f"- Each study: `pets search --space search_spaces/mam.ron --budget 0.5% --device cuda "
          f"--jobs {args.jobs} --sampler S --promotion R --search-seed N` on `mr` with "
          f"minilm-l6, otherwise the defaults: {ntrials} search trials each, the same baselines "
          "and training seed, then the confirmation (the 3 most accurate front designs and the "
          "baselines, 3 seeds).",
          f"- Search seeds: {', '.join(map(str, seeds))}. Budget {budget[studies[0][3]]:,} "
          f"trainable parameters; full fidelity {full} steps.",
          "- Hypervolume: complete search trials at full fidelity only, reference point accuracy "
          f"{REFERENCE_ACCURACY} and parameters = the budget, divided by budget × "
          f"{1 - REFERENCE_ACCURACY} (1 would be accuracy 1 at zero parameters); the same as each "
          "study's own hypervolume.svg. Curves: median over the seeds, band min–max. Trials are "
          "counted in the order they ended; wall time is the study's as `--timeout` measures it "
          "(the union of its trials' intervals, baselines included), at each trial's end.", ""]
    md += ["## Hypervolume against trials", "", "![hv against trials](search-quality/hv-trials.svg)",
           "", "## Hypervolume against wall time", "",
           "![hv against wall time](search-quality/hv-wall.svg)", "",
           "## Final numbers", "",
           f"Median [min–max] over the {len(seeds)} search seeds. \"hv at {t_equal:.0f} s\" is the "
           "hypervolume at the wall time of the fastest study's search end, where every study "
           "has a value. The confirmed accuracy is the mean over the 3 confirmation seeds of "
           "each run's best design (its most accurate confirmed search design on dev).", "",
           "| sampler | promotion | final hypervolume | per seed | hv at "
           f"{t_equal:.0f} s | search wall time (s) | confirmed test accuracy | confirmed dev accuracy |",
           "|---|---|---|---|---|---|---|---|"]
    for g in groups:
        rs = by[g]
        best = [r["best"] for r in rs if r["best"]]
        md.append(f"| {g[0]} | {g[1]} | {spread([r['hv'] for r in rs], 4)} | "
                  + ", ".join(f"{r['hv']:.4f}" for r in rs)
                  + f" | {spread([step_at(r['curve'], t_equal) for r in rs], 4)}"
                  + f" | {spread([r['wall'] for r in rs], 0)}"
                  + f" | {spread([float(b['mean_test']) for b in best], 4)}"
                  + f" | {spread([float(b['mean_dev']) for b in best], 4)} |")
    md += ["", "## Each run's best design, confirmed", "",
           "| study | search trials (complete) | final hv | best design's trial | params | "
           "test accuracy (mean ± sd, 3 seeds) | dev accuracy (mean) |", "|---|---:|---:|---:|---:|---|---:|"]
    for r in sorted(runs, key=lambda r: (r["sampler"], r["rule"], r["seed"])):
        b = r["best"]
        cells = (f"{b['trial']} | {int(b['params']):,} | {float(b['mean_test']):.4f} ± "
                 f"{float(b['sd_test']):.4f} | {float(b['mean_dev']):.4f}") if b else "– | – | – | –"
        md.append(f"| `{r['name']}` | {r['n']} ({r['complete']}) | {r['hv']:.4f} | {cells} |")

    hv = lambda s=None, rule=None: [r["hv"] for r in runs if (s is None or r["sampler"] == s)
                                    and (rule is None or r["rule"] == rule)]
    key = {(r["sampler"], r["rule"], r["seed"]): r for r in runs}
    pairs_s = [(key[("nsga2", ru, s)]["hv"], key[("random", ru, s)]["hv"])
               for ru in ("sync", "async") for s in seeds
               if ("nsga2", ru, s) in key and ("random", ru, s) in key]
    pairs_r = [(key[(sa, "async", s)]["hv"], key[(sa, "sync", s)]["hv"])
               for sa in ("nsga2", "random") for s in seeds
               if (sa, "async", s) in key and (sa, "sync", s) in key]
    md += ["", "## Verdicts", ""]
    if hv("nsga2") and hv("random"):
        md.append("- Sampler (both rules pooled): " + verdict(hv("nsga2"), hv("random"), "nsga2",
                                                               "random", pairs_s))
        for ru in ("sync", "async"):
            p = [(key[("nsga2", ru, s)]["hv"], key[("random", ru, s)]["hv"]) for s in seeds
                 if ("nsga2", ru, s) in key and ("random", ru, s) in key]
            if p:
                md.append(f"- Under `{ru}`: " + verdict([a for a, _ in p], [b for _, b in p],
                                                        "nsga2", "random", p))
    if hv(rule="async") and hv(rule="sync"):
        md.append("- Promotion (both samplers pooled), at equal trials: " +
                  verdict(hv(rule="async"), hv(rule="sync"), "async", "sync", pairs_r,
                          "sampler and search seed"))
        wa = [r["wall"] for r in runs if r["rule"] == "async"]
        ws = [r["wall"] for r in runs if r["rule"] == "sync"]
        ea = [step_at(r["curve"], t_equal) for r in runs if r["rule"] == "async"]
        es = [step_at(r["curve"], t_equal) for r in runs if r["rule"] == "sync"]
        md.append(f"- Wall time: the {ntrials} search trials took a median {statistics.median(wa):.0f} s "
                  f"under async against {statistics.median(ws):.0f} s under sync "
                  f"({100 * (statistics.median(wa) / statistics.median(ws) - 1):+.0f}%); at "
                  f"{t_equal:.0f} s of wall time the median hypervolume was "
                  f"{statistics.median(ea):.4f} (async) against {statistics.median(es):.4f} (sync).")
    md += ["", f"With {len(seeds)} search seeds per cell these are small samples: a difference "
           "inside the seeds' ranges is not evidence of a difference.", ""]
    with open(os.path.join(args.out, "search-quality.md"), "w") as f:
        f.write("\n".join(md))
    print(f"wrote {os.path.join(args.out, 'search-quality.md')} and {figs}/hv-*.svg")
    if args.found:
        write_found(args, runs)


def write_found(args, runs):
    """The 2 most accurate confirmed search designs on dev over all runs (distinct designs), as
    design files for the unified-view plan's `searched` sections."""
    rows = []
    for r in runs:
        path = os.path.join(args.confirmed, r["name"], "confirmed.csv")
        for c in csv.DictReader(open(path)):
            if c["kind"] == "search" and c["mean_dev"]:
                rows.append((float(c["mean_dev"]), float(c["mean_test"]), r["name"], int(c["trial"])))
    os.makedirs(args.found, exist_ok=True)
    seen = set()
    for dev, test, study, trial in sorted(rows, reverse=True):
        db = sqlite3.connect(f"file:{os.path.join(args.stores, study + '.sqlite')}?mode=ro", uri=True)
        design, canonical, params = db.execute(
            "SELECT design, canonical, params FROM trials WHERE number = ?", (trial,)).fetchone()
        db.close()
        if canonical in seen:
            continue
        seen.add(canonical)
        name = f"mr-{study[2:]}-trial{trial}"
        design = re.sub(r'name: "[^"]*"', f'name: "{name}"', design, count=1)
        with open(os.path.join(args.found, name + ".ron"), "w") as f:
            f.write(f"// Found by `pets search` (study `{study}`, trial {trial}, "
                    "scripts/gpu-search-quality.sh): one of the two most accurate confirmed\n"
                    f"// search designs on dev over reports/search-quality/, {params:,} parameters, "
                    f"confirmed dev {dev:.4f}, test {test:.4f} (3 seeds).\n"
                    "// Written by bench/search_quality.py --found from the study's store.\n"
                    + design + "\n")
        print("wrote", os.path.join(args.found, name + ".ron"))
        if len(seen) == 2:
            break


def budget_of(pareto_md):
    """The budget in parameters, as the study's pareto.md states it."""
    m = re.search(r"Budget: ([\d,]+) trainable parameters", open(pareto_md).read())
    if not m:
        raise SystemExit(f"no budget in {pareto_md}")
    return int(m.group(1).replace(",", ""))


if __name__ == "__main__":
    main()
