#!/usr/bin/env python3
"""Checks a pets PEFT export against Hugging Face transformers + peft.

make-tiny DIR      write a tiny random BERT folder (transformers' own checkpoint layout) and
                   DIR/reviews.tsv, a small task it can learn
compare            load the base model with transformers' BertModel, apply the adapter (LoRA or
                   IA3, from `pets export --format peft`) with PeftModel.from_pretrained, mean-pool over the attention mask, apply pets'
                   head, and compare the logits with `pets predict --format jsonl` output;
                   exits 1 when the largest absolute difference exceeds --tolerance
compare-ia3        the same for an IA³ design exported in pets' own format: PEFT's IA3 on the
                   base model (keys and values rescaled at their output, the FFN's second
                   projection at its input), its vectors set to pets' trained ones
"""

import argparse
import json
import sys
from pathlib import Path

from logit_check import encode, head_logits, quiet, read_predictions

TINY_WORDS = ["the", "a", "film", "movie", "plot", "actors", "story", "was", "is", "great",
              "awful", "good", "bad", "fine", "dull", "and", "very", "quite", "not", "really",
              ".", ",", "!"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def make_tiny(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(SPECIALS + TINY_WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIALS)
    tok.save(str(out / "tokenizer.json"))
    # A wide init (0.2, not BERT's 0.02) so the random layers do not wash the input out.
    config = BertConfig(vocab_size=len(vocab), hidden_size=48, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=96, max_position_embeddings=32,
                        hidden_act="gelu", initializer_range=0.2)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(out), safe_serialization=True)
    good, bad = ["great", "good", "fine"], ["awful", "bad", "dull"]
    subjects = ["the film", "a movie", "the plot", "the actors", "the story"]
    rows = ["text\tlabel"]
    for i in range(200):
        word, label = (good[i % 3], "pos") if i % 2 == 0 else (bad[i % 3], "neg")
        rows.append(f"{subjects[i % 5]} was very {word} .\t{label}")
    (out / "reviews.tsv").write_text("\n".join(rows) + "\n")
    print(f"wrote a tiny BERT to {out}")


def compare(adapter: Path, predictions: Path, base: str | None, tolerance: float) -> int:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import BertModel

    quiet()
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = base or config["base_model_name_or_path"]
    model = BertModel.from_pretrained(base, add_pooling_layer=False)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    head = load_file(str(adapter / "head.safetensors"))
    method = {"LORA": "LoRA", "IA3": "IA³"}.get(config["peft_type"], config["peft_type"])
    return check(model, head, adapter, predictions, base, tolerance, method)


# pets' IA³ module labels (search_spaces/presets/ia3.ron) and the BERT module each rescales.
IA3_SITES = {"k": "attention.self.key", "v": "attention.self.value", "ffn": "output.dense"}


def compare_ia3(adapter: Path, predictions: Path, base: str, tolerance: float) -> int:
    import re

    import torch
    from peft import IA3Config, get_peft_model
    from safetensors.torch import load_file
    from transformers import BertModel

    quiet()
    tensors = load_file(str(adapter / "adapter.safetensors"))
    ffn = r".*layer\.\d+\.output\.dense"
    config = IA3Config(target_modules=rf".*\.(key|value)|{ffn}", feedforward_modules=ffn)
    model = get_peft_model(BertModel.from_pretrained(base, add_pooling_layer=False), config)
    set_vectors = 0
    for name, module in model.named_modules():
        if not hasattr(module, "ia3_l"):
            continue
        layer = int(re.search(r"layer\.(\d+)\.", name).group(1))
        label = next(k for k, site in IA3_SITES.items()
                     if name.endswith(f"layer.{layer}.{site}"))
        vector = tensors[f"{label}.layer{layer}.ia3_l"]
        with torch.no_grad():
            param = module.ia3_l["default"]
            param.copy_(vector.reshape(param.shape))
        set_vectors += 1
    expected = sum(1 for k in tensors if k.endswith(".ia3_l"))
    if set_vectors != expected:
        print(f"error: PEFT has {set_vectors} IA3 vectors, pets {expected}", file=sys.stderr)
        return 2
    head = {k: v for k, v in tensors.items() if k.startswith("head.")}
    return check(model.eval(), head, adapter, predictions, base, tolerance, "IA³")


def check(model, head, adapter: Path, predictions: Path, base: str, tolerance: float,
          method: str) -> int:
    import torch

    rows = read_predictions(predictions)
    if not rows:
        print(f"error: {predictions} holds no predictions", file=sys.stderr)
        return 2
    ids, mask = encode(adapter, rows)

    def logits() -> torch.Tensor:
        return head_logits(model, head, ids, mask)

    reference = logits()
    with model.disable_adapter():
        without = logits()
    ours = torch.tensor([r["logits"] for r in rows], dtype=reference.dtype)
    diff = (reference - ours).abs().max().item()
    effect = (reference - without).abs().max().item()
    agree = sum(int(a == b) for a, b in zip(reference.argmax(1).tolist(), ours.argmax(1).tolist()))
    print(f"peft {__import__('peft').__version__}, transformers "
          f"{__import__('transformers').__version__}, torch {torch.__version__}; base {base}")
    print(f"{len(rows)} texts: max abs logit difference pets vs PEFT = {diff:.3e} "
          f"(tolerance {tolerance:g}); the {method} itself moves logits by up to {effect:.3e}; "
          f"same label for {agree}/{len(rows)}")
    if diff > tolerance:
        print("FAILED: pets and PEFT disagree", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("make-tiny")
    tiny.add_argument("dir", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("--adapter", type=Path, required=True, help="folder from --format peft")
    cmp.add_argument("--predictions", type=Path, required=True,
                     help="`pets predict --format jsonl` output (with logits)")
    cmp.add_argument("--base", help="base model folder (default: the adapter config's)")
    cmp.add_argument("--tolerance", type=float, default=1e-4)
    ia3 = sub.add_parser("compare-ia3")
    ia3.add_argument("--adapter", type=Path, required=True, help="folder from `pets export`")
    ia3.add_argument("--predictions", type=Path, required=True,
                     help="`pets predict --format jsonl` output (with logits)")
    ia3.add_argument("--base", required=True, help="base model folder")
    ia3.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    if args.command == "make-tiny":
        make_tiny(args.dir)
        return 0
    if args.command == "compare-ia3":
        return compare_ia3(args.adapter, args.predictions, args.base, args.tolerance)
    return compare(args.adapter, args.predictions, args.base, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
