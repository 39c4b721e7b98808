"""Reference hidden states and logits of a GGUF llama (SmolLM2-135M-Instruct) from transformers,
and their comparison with pets' llama backbone (issue 22, part 4b, model half).

transformers loads the GGUF with `AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`,
dequantising every tensor to float32. The prompts are token ids written by pets
(`cargo run --example gguf_tokenize -- MODEL.gguf mr`, see scripts/llama_tokenizer_check.py),
so this half does not depend on the tokenizer: the first --n rows, cut to --max-len tokens, run
as one right-padded batch (pad id 2, attention mask 0 there, positions 0.. per row).

JSON schema (the reference this script writes, and the file pets must write for --compare):
    {
      "model":       "SmolLM2-135M-Instruct.Q4_1.gguf",      # informative
      "prompts":     ["text", ...],                          # P texts
      "ids":         [[int, ...], ...],                      # P token-id lists, unpadded
      "hidden":      [[float x 576], ...],                   # P: the last real token's final
                                                             #    hidden state, after the final
                                                             #    RMSNorm (output_norm.weight)
      "hidden_norm": [float, ...],                           # P: L2 norms of "hidden"
      "top5_ids":    [[int x 5], ...],                       # P: ids of the 5 largest LM logits
                                                             #    at that token (tied embeddings)
      "top5_logits": [[float x 5], ...]                      # P: those logits, descending
    }
pets' file needs "ids", "hidden", "top5_ids" and "top5_logits"; --compare checks its ids equal
the reference's, then prints the max abs and relative (max abs / max |ref|) differences of the
hidden states and of the top-5 logits, and how many prompts agree on the top-1 and top-5 ids.

GGUF -> transformers names (llama architecture; GGUF shapes are listed fastest-dim first, so a
GGUF [576, 192] tensor is a torch [192, 576] = [out, in] matrix, as nn.Linear stores it):
    token_embd.weight           model.embed_tokens.weight (also lm_head: no output.weight, tied)
    blk.N.attn_norm.weight      model.layers.N.input_layernorm.weight
    blk.N.attn_q.weight         model.layers.N.self_attn.q_proj.weight   (permuted, see below)
    blk.N.attn_k.weight         model.layers.N.self_attn.k_proj.weight   (permuted, see below)
    blk.N.attn_v.weight         model.layers.N.self_attn.v_proj.weight
    blk.N.attn_output.weight    model.layers.N.self_attn.o_proj.weight
    blk.N.ffn_norm.weight       model.layers.N.post_attention_layernorm.weight
    blk.N.ffn_gate.weight       model.layers.N.mlp.gate_proj.weight
    blk.N.ffn_up.weight         model.layers.N.mlp.up_proj.weight
    blk.N.ffn_down.weight       model.layers.N.mlp.down_proj.weight
    output_norm.weight          model.norm.weight
llama.cpp's converter permutes the rows of q and k so that its RoPE rotates adjacent pairs
(x[2i], x[2i+1]) -- the "GPT-J / interleaved" layout -- where transformers' rotate_half pairs
x[i] with x[i + d/2]. transformers undoes it on load (modeling_gguf_pytorch_utils.py,
LlamaTensorProcessor._reverse_permute_weights), per head count h (9 for q, the 3 KV heads for k):
    w.reshape(h, d/2, 2, in).swapaxes(1, 2).reshape(h*d, in)        # d = head_dim = 64
A loader that keeps the GGUF rows as they are must instead use interleaved RoPE (candle's
`rope_i`, as candle-transformers' quantized_llama does); one that un-permutes uses `rope`
(half-split). Either gives the same attention scores. Config from metadata: llama.block_count 30,
embedding_length 576, feed_forward_length 1536, attention.head_count 9, head_count_kv 3,
rope.freq_base 100000, rope.dimension_count 64, layer_norm_rms_epsilon 1e-5, context_length 8192,
vocab_size 49152. token_embd is Q8_0; the other matrices Q4_1; norms F32.

usage: python scripts/llama_logit_check.py --gguf MODEL.gguf --ids ids.jsonl --out ref.json
       python scripts/llama_logit_check.py --reference ref.json --compare pets.json
"""

import argparse
import json
import sys
from pathlib import Path

PAD_ID = 2


def reference(gguf: Path, ids_file: Path, n: int, max_len: int) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    lines = ids_file.read_text(encoding="utf-8").split("\n")
    rows = [json.loads(line) for line in lines if line.strip()][:n]
    ids = [r["ids"][:max_len] for r in rows]
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    width = max(len(i) for i in ids)
    batch = torch.tensor([i + [PAD_ID] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    with torch.no_grad():
        out = model.model(input_ids=batch, attention_mask=mask)
        last = torch.tensor([len(i) - 1 for i in ids])
        hidden = out.last_hidden_state[torch.arange(len(ids)), last]
        logits = model.lm_head(hidden)
    top = logits.topk(5, dim=-1)
    return {
        "model": gguf.name,
        "prompts": [r["text"] for r in rows],
        "ids": ids,
        "hidden": hidden.tolist(),
        "hidden_norm": hidden.norm(dim=-1).tolist(),
        "top5_ids": top.indices.tolist(),
        "top5_logits": top.values.tolist(),
    }


def compare(ref: dict, pets: dict) -> int:
    import numpy as np

    if pets["ids"] != ref["ids"]:
        print("the prompts' token ids differ: compare the same prompts", file=sys.stderr)
        return 2
    h_ref, h_pets = np.array(ref["hidden"]), np.array(pets["hidden"])
    l_ref, l_pets = np.array(ref["top5_logits"]), np.array(pets["top5_logits"])
    for name, a, b in (("hidden", h_ref, h_pets), ("top5 logits", l_ref, l_pets)):
        diff = np.abs(a - b).max()
        print(f"{name}: max abs diff {diff:.3e}, relative {diff / np.abs(a).max():.3e}")
    top1 = sum(a[0] == b[0] for a, b in zip(ref["top5_ids"], pets["top5_ids"]))
    top5 = sum(a == b for a, b in zip(ref["top5_ids"], pets["top5_ids"]))
    print(f"{len(h_ref)} prompts: top-1 id equal in {top1}, all top-5 ids equal in {top5}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, help="the GGUF checkpoint (reference mode)")
    parser.add_argument("--ids", type=Path, help="gguf_tokenize's JSON lines (reference mode)")
    parser.add_argument("--out", type=Path, help="where the reference JSON goes")
    parser.add_argument("--n", type=int, default=24, help="prompts (the first N rows)")
    parser.add_argument("--max-len", type=int, default=64, help="tokens per prompt at most")
    parser.add_argument("--reference", type=Path, help="a reference JSON (compare mode)")
    parser.add_argument("--compare", type=Path, help="pets' JSON in the same schema")
    args = parser.parse_args()
    if args.compare:
        ref = json.loads(args.reference.read_text())
        return compare(ref, json.loads(args.compare.read_text()))
    if not (args.gguf and args.ids and args.out):
        parser.error("reference mode needs --gguf, --ids and --out")
    ref = reference(args.gguf, args.ids, args.n, args.max_len)
    args.out.write_text(json.dumps(ref) + "\n")
    norms = ", ".join(f"{x:.3f}" for x in ref["hidden_norm"][:5])
    print(f"{len(ref['ids'])} prompts -> {args.out}; hidden norms {norms} ...")
    print(f"top-1 ids {[t[0] for t in ref['top5_ids']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
