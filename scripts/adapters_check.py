#!/usr/bin/env python3
"""Checks a pets AdapterHub export (`pets export --format adapters`) against adapters itself.

Run with a venv holding adapters 1.3.0, transformers 4.57.6 and torch (scripts/adapters_check.sh
makes one). Commands:

randomise RUN      add N(0, 0.05²) noise to every module tensor of RUN/adapter.safetensors (not
                   the head): a freshly trained up-projection near zero would hide a misplaced
                   module
texts CSV OUT N    write N texts of a CSV's `text` column to OUT, one per line (newlines removed);
                   --task FILE also writes the next 256 rows (text, label) as a small task;
                   both take the labels in turn
compare            load the base with transformers' BertModel, `adapters.init` it, load the export
                   with `model.load_adapter(dir, use_safetensors=True)`, mean-pool over the
                   attention mask, apply pets' head.safetensors, and compare the logits with
                   `pets predict --format jsonl`; prints the adapter's own effect on the logits
                   and exits 1 above --tolerance, or when that effect is under 100x it
"""

import argparse
import csv
import json
import sys
from pathlib import Path

from logit_check import encode, head_logits, quiet, read_predictions


def randomise(run: Path) -> int:
    import torch
    from safetensors.torch import load_file, save_file

    path = run / "adapter.safetensors"
    tensors = load_file(str(path))
    gen = torch.Generator().manual_seed(0)
    moved = 0
    for name, t in tensors.items():
        if name.startswith("head."):
            continue
        tensors[name] = t + 0.05 * torch.randn(t.shape, generator=gen, dtype=t.dtype)
        moved += 1
    save_file(tensors, str(path))
    print(f"randomised {moved} module tensors of {path}")
    return 0


def texts(source: Path, out: Path, n: int, task: Path | None) -> int:
    csv.field_size_limit(1 << 24)
    by_label: dict[str, list[str]] = {}
    with source.open(newline="") as f:
        for r in csv.DictReader(f):
            by_label.setdefault(r["label"], []).append(" ".join(r["text"].split())[:400])
    labels = sorted(by_label)
    # Alternate the labels (the file is sorted by label): n texts, then 256 training rows.
    rows = [(by_label[lab][i], lab) for i in range(n + 256) for lab in labels
            if i < len(by_label[lab])]
    out.write_text("\n".join(t for t, _ in rows[:n]) + "\n")
    if task is not None:
        with task.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows[n:n + 256])
    return 0


def compare(adapter: Path, predictions: Path, base: str | None, tolerance: float) -> int:
    import adapters
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import BertModel

    quiet(Warning)
    config = json.loads((adapter / "adapter_config.json").read_text())
    manifest = json.loads((adapter / "manifest.json").read_text())
    base = base or config["model_name"]
    model = BertModel.from_pretrained(base, add_pooling_layer=False)
    adapters.init(model)
    info: dict = {}
    name = model.load_adapter(str(adapter), use_safetensors=True, set_active=True,
                              loading_info=info)
    if info.get("unexpected_keys"):
        print(f"error: adapters ignored {info['unexpected_keys'][:5]}", file=sys.stderr)
        return 2
    missing = [k for k in info.get("missing_keys", []) if name in k]
    if missing:
        print(f"error: adapters found no tensor for {missing[:5]}", file=sys.stderr)
        return 2
    model.eval()
    head = load_file(str(adapter / "head.safetensors"))

    rows = read_predictions(predictions)
    ids, mask = encode(adapter, rows)

    def logits() -> torch.Tensor:
        return head_logits(model, head, ids, mask)

    reference = logits()
    model.set_active_adapters(None)
    without = logits()
    ours = torch.tensor([r["logits"] for r in rows], dtype=reference.dtype)
    diff = (reference - ours).abs().max().item()
    effect = (reference - without).abs().max().item()
    arch = config["config"].get("architecture") or "bottleneck"
    print(f"adapters {adapters.__version__}, transformers {transformers.__version__}, torch "
          f"{torch.__version__}; {manifest['design']} as {arch}; {len(rows)} texts: max |dlogit| "
          f"pets vs adapters = {diff:.3e} (tolerance {tolerance:g}); the modules' own effect "
          f"= {effect:.3e}")
    if diff > tolerance:
        print("FAILED: pets and adapters disagree", file=sys.stderr)
        return 1
    if effect < 100 * tolerance:
        print("FAILED: the modules move the logits by less than 100x the tolerance",
              file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("randomise")
    r.add_argument("run", type=Path)
    t = sub.add_parser("texts")
    t.add_argument("csv", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("n", type=int)
    t.add_argument("--task", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("--adapter", type=Path, required=True)
    c.add_argument("--predictions", type=Path, required=True)
    c.add_argument("--base")
    c.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    if args.command == "randomise":
        return randomise(args.run)
    if args.command == "texts":
        return texts(args.csv, args.out, args.n, args.task)
    return compare(args.adapter, args.predictions, args.base, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
