"""pets' GGUF tokenizer against transformers' on the same GGUF file (issue 22, part 4b).

Input: the JSON lines of `cargo run --example gguf_tokenize -- MODEL.gguf mr` (one
`{"text": ..., "ids": [...]}` per text, pets' ids). transformers builds its tokenizer from the
same file's metadata (`AutoTokenizer.from_pretrained(folder, gguf_file=name)`, which needs the
`gguf` package) and encodes each text the way pets does: special tokens as the file asks (no BOS
for SmolLM2), truncated to --max-len, no padding.

Two references are compared, since they differ in one place:
  transformers-gguf  what transformers builds from the file. For `tokenizer.ggml.pre = smollm` it
                     has no entry and falls back to GPT-2's byte-level regex;
  original           the same, with the pre-tokenizer of SmolLM2's own tokenizer.json (and of
                     llama.cpp's `smollm`): numeric characters (`\p{N}`: digits, "½", "²") cut
                     one by one, then GPT-2's regex. pets builds this one.
The two differ only where GPT-2's regex joins spaces to a following numeric character
(` ?\p{N}+`) and the vocabulary merges that space differently: never for ASCII digits alone (no
merge of SmolLM2's vocabulary contains one), but for "9 ½" (original "Ġ" "Â½", GPT-2 regex "ĠÂ"
"½") and for two or more spaces before a digit ("a  1": "ĠĠ" "1" against "Ġ" "Ġ" "1").

Prints, per reference: texts compared, identical, and the first mismatches (text, both id lists,
the first differing position). Exit status 1 when pets differs from the original reference.

usage: python scripts/llama_tokenizer_check.py --gguf MODEL.gguf --pets ids.jsonl [--max-len 512]
"""

import argparse
import json
import sys
from pathlib import Path


def load_transformers(gguf: Path):
    """transformers' tokenizer from the GGUF's metadata, and a copy with SmolLM2's original split."""
    import copy

    import transformers
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    as_loaded = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    original = copy.deepcopy(as_loaded)
    original.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return {"transformers-gguf": as_loaded, "original": original}


def first_difference(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare(name: str, tokenizer, rows: list[dict], max_len: int, shown: int) -> int:
    """Prints the agreement of pets' ids with `tokenizer`'s; returns the number of mismatches."""
    texts = [r["text"] for r in rows]
    theirs = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    mismatches = [(r, t) for r, t in zip(rows, theirs) if r["ids"] != t]
    print(f"{name}: {len(rows)} texts compared, {len(rows) - len(mismatches)} identical")
    for row, ids in mismatches[:shown]:
        at = first_difference(row["ids"], ids)
        print(f"  text: {row['text']!r}")
        print(f"    first difference at token {at}")
        print(f"    pets:  {row['ids'][max(0, at - 3):at + 5]}")
        print(f"    {name}: {ids[max(0, at - 3):at + 5]}")
        print(f"    pets tokens:  {tokenizer.convert_ids_to_tokens(row['ids'][max(0, at - 3):at + 5])}")
        print(f"    their tokens: {tokenizer.convert_ids_to_tokens(ids[max(0, at - 3):at + 5])}")
    return len(mismatches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF checkpoint")
    parser.add_argument("--pets", type=Path, required=True, help="gguf_tokenize's JSON lines")
    parser.add_argument("--max-len", type=int, default=512, help="as given to gguf_tokenize")
    parser.add_argument("--show", type=int, default=5, help="mismatches printed per reference")
    args = parser.parse_args()

    # Split on "\n" only: str.splitlines also cuts at U+0085 and U+2028, which JSON leaves raw.
    lines = args.pets.read_text(encoding="utf-8").split("\n")
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        print(f"{args.pets} has no rows", file=sys.stderr)
        return 2
    failed = 0
    for name, tokenizer in load_transformers(args.gguf).items():
        mismatches = compare(name, tokenizer, rows, args.max_len, args.show)
        if name == "original":
            failed = mismatches
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
