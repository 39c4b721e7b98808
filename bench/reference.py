#!/usr/bin/env python3
"""PyTorch reference for `pets bench`: the same design on the same frozen BERT, step for step.

pets writes a plan (JSON: the design's modules resolved to encoder sites and layers, training
settings) and a safetensors file (its initial trainable tensors under its own names, and the
benchmark batches). This script rebuilds exactly that model in plain PyTorch, then answers one
JSON request per stdin line with one JSON line on stdout (messages go to stderr):

    {"cmd": "check", "steps": n}   -> {"logits": [...], "losses": [...]}
    {"cmd": "time", "train": bool} -> {"ms": [...]}   (one time per batch, each batch once)

The maths follows pets (src/backbone/encoder.rs, src/adapters/*.rs):
- post-LN BERT: embeddings (word + position + token type 0) -> LayerNorm; per layer
  q/k/v -> attention (additive mask -1e9 on padding) -> W_o -> +x -> LayerNorm -> FFN (GELU
  with erf) -> +a -> LayerNorm; LayerNorm eps from config.json (1e-12 for MiniLM); no dropout.
- a site's modules: parallel ones read the sublayer input z, in design order, each composed into
  the running output; a sequential one then reads that output.
  query/key/value: z = layer input x; output: z = merged heads; attention: z = x;
  ffn_in: z = a (post-attention LN); ffn_out: z = GELU output; ffn: z = a.
- LoRA: delta = (alpha / r) * B(A z); bottleneck: up(f(down z + b) ) + b;
  compose: add h + d, scaled h + s d, learned scale h + s d (s trained), gated h + sigmoid(z w + b) d.
- prefix (no reparameterisation): keys/values (l, hidden) split into heads like k and v,
  prepended to every sequence's keys and values; the mask gives them 0.
- head: mean of the final hidden states over real tokens -> Linear(hidden, classes).
- step: cross-entropy (mean), backward, global-norm clipping, AdamW (torch's, same betas/eps).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

MASKED = -1e9  # pets' padding value: large and finite
SITES = ("query", "key", "value", "output", "attention", "ffn_in", "ffn_out", "ffn")
ACTIVATIONS = {"Relu": F.relu, "Gelu": F.gelu, "Silu": F.silu, "Tanh": torch.tanh,
               "Identity": lambda x: x}


class Unsupported(Exception):
    pass


def tagged(value):
    """A serde enum as JSON: "Unit" or {"Variant": payload} -> (variant, payload)."""
    if isinstance(value, str):
        return value, None
    (variant, payload), = value.items()
    return variant, payload


class Params:
    """pets' trainable tensors by name; remembers which ones the model used."""

    def __init__(self, tensors, device):
        self.tensors = {k: torch.nn.Parameter(v.to(device)) for k, v in tensors.items()}
        self.used = set()

    def __getitem__(self, name):
        if name not in self.tensors:
            raise Unsupported(f"pets wrote no tensor {name}: the reference and pets disagree "
                              "on this design's tensors")
        self.used.add(name)
        return self.tensors[name]


class Module:
    """One attached module instance: delta = form(z), then composed into h."""

    def __init__(self, spec, layer, params):
        self.name = f"{spec['label']}.layer{layer}"
        self.form, self.args = tagged(spec["form"])
        self.comp, self.comp_arg = tagged(spec["composition"])
        p = lambda suffix: params[f"{self.name}.{suffix}"]
        if self.form == "Lora":
            self.a, self.b = p("lora_A.weight"), p("lora_B.weight")
            self.scale = self.args["alpha"] / self.args["r"]
        elif self.form == "Bottleneck":
            self.down_w, self.down_b = p("down.weight"), p("down.bias")
            self.up_w, self.up_b = p("up.weight"), p("up.bias")
            self.act = ACTIVATIONS[self.args["activation"]]
        else:
            raise Unsupported(f"form {self.form} at a module site")
        if self.comp == "LearnedScale":
            self.scale_param = p("scale")
        elif self.comp == "Gated":
            self.gate_w, self.gate_b = p("gate.weight"), p("gate.bias")
        elif self.comp not in ("Add", "Scaled"):
            raise Unsupported(f"composition {self.comp}")

    def delta(self, z):
        if self.form == "Lora":
            return F.linear(F.linear(z, self.a), self.b) * self.scale
        return F.linear(self.act(F.linear(z, self.down_w, self.down_b)), self.up_w, self.up_b)

    def compose(self, h, delta, z):
        if self.comp == "Add":
            return h + delta
        if self.comp == "Scaled":
            return h + delta * self.comp_arg
        if self.comp == "LearnedScale":
            return h + delta * self.scale_param
        return h + delta * torch.sigmoid(z @ self.gate_w + self.gate_b)


class LayerModules:
    """Everything a design attaches to one encoder layer (pets' LayerAdapters)."""

    def __init__(self):
        self.parallel = {s: [] for s in SITES}
        self.sequential = {}
        self.prefix = None  # (keys, values), each (l, hidden)

    def apply(self, site, z, h):
        for m in self.parallel[site]:
            h = m.compose(h, m.delta(z), z)
        m = self.sequential.get(site)
        if m is not None:
            h = m.compose(h, m.delta(h), h)
        return h


def build_layers(plan, n_layers, params):
    layers = [LayerModules() for _ in range(n_layers)]
    for spec in plan["modules"]:
        form, args = tagged(spec["form"])
        for i in spec["layers"]:
            if form == "Prefix":
                if args.get("reparam") is not None:
                    raise Unsupported("prefix with an MLP reparameterisation")
                name = f"{spec['label']}.layer{i}"
                layers[i].prefix = (params[f"{name}.keys"], params[f"{name}.values"])
            elif spec["site"] not in SITES:
                raise Unsupported(f"a {form} module on site {spec['site']} (per-head bottleneck)")
            elif spec["insertion"] == "Parallel":
                layers[i].parallel[spec["site"]].append(Module(spec, i, params))
            else:
                layers[i].sequential[spec["site"]] = Module(spec, i, params)
    return layers


class Bert:
    """The frozen encoder with pets' insertion points, on plain tensors (no grad)."""

    def __init__(self, model_dir, device):
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("hidden_act", "gelu") != "gelu":
            raise Unsupported(f"hidden_act {config['hidden_act']} (only gelu with erf)")
        w = load_file(str(model_dir / "model.safetensors"))
        w = {k.removeprefix("bert."): v.to(device) for k, v in w.items()}
        self.w = w
        self.eps = config.get("layer_norm_eps", 1e-12)
        self.heads = config["num_attention_heads"]
        self.n_layers = config["num_hidden_layers"]
        self.hidden = config["hidden_size"]

    def linear(self, name, x):
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def norm(self, name, x):
        return F.layer_norm(x, (self.hidden,), self.w[f"{name}.weight"], self.w[f"{name}.bias"],
                            self.eps)

    def forward(self, ids, mask, layers):
        t = ids.shape[1]
        e = "embeddings"
        x = (self.w[f"{e}.word_embeddings.weight"][ids]
             + self.w[f"{e}.position_embeddings.weight"][:t]
             + self.w[f"{e}.token_type_embeddings.weight"][0])
        x = self.norm(f"{e}.LayerNorm", x)
        additive = ((1.0 - mask) * MASKED)[:, None, None, :]
        for i, m in enumerate(layers):
            x = self.layer(f"encoder.layer.{i}", x, additive, m)
        return x

    def layer(self, p, x, additive, m):
        q = m.apply("query", x, self.linear(f"{p}.attention.self.query", x))
        k = m.apply("key", x, self.linear(f"{p}.attention.self.key", x))
        v = m.apply("value", x, self.linear(f"{p}.attention.self.value", x))
        context = self.attention(q, k, v, additive, m.prefix)
        out = m.apply("output", context, self.linear(f"{p}.attention.output.dense", context))
        out = m.apply("attention", x, out)
        a = self.norm(f"{p}.attention.output.LayerNorm", out + x)
        inner = m.apply("ffn_in", a, self.linear(f"{p}.intermediate.dense", a))
        inner = F.gelu(inner)  # erf form, torch's default
        out = m.apply("ffn_out", inner, self.linear(f"{p}.output.dense", inner))
        out = m.apply("ffn", a, out)
        return self.norm(f"{p}.output.LayerNorm", out + a)

    def attention(self, q, k, v, additive, prefix):
        b, t, d = q.shape
        h = self.heads
        split = lambda y: y.view(b, -1, h, d // h).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        if prefix is not None:
            l = prefix[0].shape[0]
            per_head = lambda p: p.view(1, l, h, d // h).transpose(1, 2).expand(b, h, l, d // h)
            k = torch.cat([per_head(prefix[0]), k], dim=2)
            v = torch.cat([per_head(prefix[1]), v], dim=2)
            additive = torch.cat([additive.new_zeros(b, 1, 1, l), additive], dim=3)
        # What transformers' BERT uses by default: PyTorch's fused attention (softmax(qk^T/sqrt(d_h)
        # + mask) v), so the reference is PyTorch at its usual best.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
        return out.transpose(1, 2).reshape(b, t, d)


class Reference:
    def __init__(self, plan, plan_dir, device):
        self.device = device
        self.bert = Bert(Path(plan["model_dir"]), device)
        tensors = load_file(str(plan_dir / plan["tensors"]))
        self.batches = []
        for i in range(plan["batches"]):
            get = lambda n: tensors.pop(f"batch.{i}.{n}").to(device)
            self.batches.append((get("input_ids"), get("attention_mask"), get("labels")))
        self.params = Params(tensors, device)
        self.layers = build_layers(plan, self.bert.n_layers, self.params)
        self.head_w, self.head_b = self.params["head.weight"], self.params["head.bias"]
        unused = sorted(set(self.params.tensors) - self.params.used)
        if unused:
            raise Unsupported(f"pets trains tensors this reference does not model: {unused[:5]}")
        self.trainable = list(self.params.tensors.values())
        self.optimizer = torch.optim.AdamW(self.trainable, lr=plan["lr"], betas=(0.9, 0.999),
                                           eps=1e-8, weight_decay=plan["weight_decay"])
        self.max_grad_norm = plan["max_grad_norm"]

    def logits(self, i):
        ids, mask, _ = self.batches[i]
        hidden = self.bert.forward(ids, mask, self.layers)
        m = mask.unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.linear(pooled, self.head_w, self.head_b)

    def train_step(self, i):
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.logits(i), self.batches[i][2])
        loss.backward()
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.max_grad_norm)
        self.optimizer.step()
        return loss.item()  # pets reads its loss back every step too

    def check(self, steps):
        with torch.no_grad():
            logits = self.logits(0).flatten().tolist()
        losses = [self.train_step(i % len(self.batches)) for i in range(steps)]
        return {"logits": logits, "losses": losses}

    def time(self, train):
        times = []
        for i in range(len(self.batches)):
            started = time.perf_counter()
            if train:
                self.train_step(i)
            else:
                with torch.no_grad():
                    self.logits(i).cpu()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - started) * 1e3)
        return {"ms": times}


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, type=Path)
    args = parser.parse_args()
    try:
        plan = json.loads(args.plan.read_text())
        torch.set_num_threads(plan["threads"])
        device = torch.device(plan["device"])
        ref = Reference(plan, args.plan.parent, device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        send({"torch": torch.__version__, "python": platform.python_version(),
              "device": f"{name} ({torch.get_num_threads()} threads)",
              "trainable": sum(p.numel() for p in ref.trainable)})
        for line in sys.stdin:
            request = json.loads(line)
            if request["cmd"] == "check":
                send(ref.check(request["steps"]))
            elif request["cmd"] == "time":
                send(ref.time(request["train"]))
            else:
                raise ValueError(f"unknown request {request!r}")
    except Exception as e:  # noqa: BLE001 - every failure goes back to pets as one message
        send({"error": f"{type(e).__name__}: {e}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
