#!/usr/bin/env python3
"""PyTorch end-to-end reference for scripts/bench-cpu.sh: one `pets train`-like run in PyTorch.

Trains a design on the train split `pets split` wrote (train.tsv, dev.tsv) for some epochs with
the usual dynamic padding (shuffled batches, each padded to its longest sentence, no length
bucketing) and evaluates on dev, with pets' training settings: batch 32, AdamW (lr from the
plan, betas 0.9/0.999, eps 1e-8, weight decay 0.01), linear warm-up over 6% of the steps then
linear decay to 0, global-norm clipping to 1, max_len 64, no dropout, a mean-pooled linear
head, evaluation batches of 128.

Models:
- `--peft-lora R,ALPHA`: transformers' BertModel with PEFT's LoRA on query and value (PEFT's own
  initialisation), what a PyTorch user would write.
- `--plan runs/bench/<design>/plan.json`: the design as `pets bench` handed it to
  bench/reference.py (its modules, from pets' initial tensors), for the designs PEFT lacks
  (bottleneck adapters, MAM).

Prints one JSON line: sentences, train seconds, eval seconds, wall seconds, dev accuracy,
torch version, threads and BLAS.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402


def read_tsv(path):
    # Only "\n" ends a row (str.splitlines would also split at U+0085 and U+2028 in a text).
    lines = path.read_text(encoding="utf-8").split("\n")[1:]
    rows = [line.rsplit("\t", 1) for line in lines if line]
    return [r[0] for r in rows], [r[1] for r in rows]


def encode(tokenizer, texts, max_len):
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)
    return [e.ids for e in tokenizer.encode_batch(texts)]


def pad(ids, rows):
    t = max(len(ids[i]) for i in rows)
    input_ids = torch.zeros(len(rows), t, dtype=torch.long)
    mask = torch.zeros(len(rows), t)
    for j, i in enumerate(rows):
        input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
        mask[j, : len(ids[i])] = 1.0
    return input_ids, mask


class PeftLora(torch.nn.Module):
    def __init__(self, model_dir, r, alpha, classes):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import BertModel

        bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False,
                                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0,
                            target_modules=["query", "value"])
        self.bert = get_peft_model(bert, config)
        self.head = torch.nn.Linear(bert.config.hidden_size, classes)

    def forward(self, ids, mask):
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1)
        return self.head((hidden * m).sum(1) / m.sum(1).clamp(min=1.0))

    def trainable(self):
        return [p for p in self.parameters() if p.requires_grad]


class PlanModel:
    """bench/reference.py's model of a pets plan, with pets' initial tensors."""

    def __init__(self, plan_path):
        plan = json.loads(plan_path.read_text())
        self.bert = reference.Bert(Path(plan["model_dir"]), torch.device("cpu"))
        tensors = load_file(str(plan_path.parent / plan["tensors"]))
        tensors = {k: v for k, v in tensors.items() if not k.startswith("batch.")}
        self.params = reference.Params(tensors, torch.device("cpu"))
        self.layers = reference.build_layers(plan, self.bert.n_layers, self.params)
        self.head_w, self.head_b = self.params["head.weight"], self.params["head.bias"]
        self.lr = plan["lr"]

    def __call__(self, ids, mask):
        hidden = self.bert.forward(ids, mask, self.layers)
        m = mask.unsqueeze(-1)
        return F.linear((hidden * m).sum(1) / m.sum(1).clamp(min=1.0), self.head_w, self.head_b)

    def trainable(self):
        return list(self.params.tensors.values())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split-dir", required=True, type=Path)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--plan", type=Path)
    p.add_argument("--peft-lora", help="r,alpha")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_texts, train_labels = read_tsv(args.split_dir / "train.tsv")
    dev_texts, dev_labels = read_tsv(args.split_dir / "dev.tsv")
    names = sorted(set(train_labels))
    index = {n: i for i, n in enumerate(names)}
    if args.plan:
        model, lr = PlanModel(args.plan), None
        lr = model.lr
    else:
        r, alpha = (float(v) for v in args.peft_lora.split(","))
        model, lr = PeftLora(args.model_dir, int(r), alpha, len(names)), args.lr
    loaded = time.perf_counter()

    tokenizer = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    train_ids = encode(tokenizer, train_texts, args.max_len)
    dev_ids = encode(tokenizer, dev_texts, args.max_len)
    train_y = torch.tensor([index[n] for n in train_labels])
    dev_y = torch.tensor([index[n] for n in dev_labels])

    params = model.trainable()
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = math.ceil(0.06 * total - 1e-9)

    def schedule(step):
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / (total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(args.seed)
    train_started = time.perf_counter()
    padded_tokens = 0
    for _ in range(args.epochs):
        order = torch.randperm(len(train_ids), generator=generator).tolist()
        for b in range(steps_per_epoch):
            rows = order[b * args.batch_size:(b + 1) * args.batch_size]
            ids, mask = pad(train_ids, rows)
            padded_tokens += ids.numel()
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(ids, mask), train_y[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            loss.item()
    train_seconds = time.perf_counter() - train_started

    eval_started = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for b in range(0, len(dev_ids), 128):
            rows = list(range(b, min(b + 128, len(dev_ids))))
            ids, mask = pad(dev_ids, rows)
            correct += (model(ids, mask).argmax(-1) == dev_y[rows]).sum().item()
    eval_seconds = time.perf_counter() - eval_started
    print(json.dumps({
        "train_examples": len(train_ids), "dev_examples": len(dev_ids),
        "accuracy": correct / len(dev_ids), "train_seconds": train_seconds,
        "eval_seconds": eval_seconds, "load_seconds": loaded - STARTED,
        "wall_seconds": time.perf_counter() - STARTED,
        "padded_tokens": padded_tokens,
        "real_tokens": sum(len(i) for i in train_ids) * args.epochs,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "mkldnn": torch.backends.mkldnn.is_available(),
    }))


if __name__ == "__main__":
    main()
