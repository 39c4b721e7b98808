"""Shared by peft_check.py and adapters_check.py: pets' tokenisation and head on a reference model.

Both scripts load an exported adapter into another library's BERT, run the texts of a
`pets predict --format jsonl` file through it the way pets does (truncate to the manifest's
max_len, pad to the longest text, mean-pool over the attention mask, apply pets' head), and
compare the logits with pets' own.
"""

import json
from pathlib import Path


def quiet(category: type[Warning] = FutureWarning) -> None:
    """The pooler is absent or unused (mean pooling): its load report is noise here."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=category)


def read_predictions(predictions: Path) -> list[dict]:
    """The rows of a `pets predict --format jsonl` file (text, logits, ...)."""
    return [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]


def encode(adapter: Path, rows: list[dict]):
    """Token ids and attention mask for the rows' texts, tokenised as pets does: the export's
    tokenizer.json, truncated to its manifest's max_len, no fixed padding (padded to the longest)."""
    import torch
    from tokenizers import Tokenizer

    manifest = json.loads((adapter / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(adapter / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=manifest["max_len"])
    encodings = tok.encode_batch([r["text"] for r in rows])
    pad = tok.token_to_id("[PAD]") or 0
    width = max(len(e.ids) for e in encodings)
    ids = torch.tensor([e.ids + [pad] * (width - len(e.ids)) for e in encodings])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encodings])
    return ids, mask


def head_logits(model, head: dict, ids, mask):
    """pets' classifier on the model: mean-pool the last hidden state over the mask, then
    head.weight and head.bias."""
    import torch

    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    return pooled @ head["head.weight"].T + head["head.bias"]
