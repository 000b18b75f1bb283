"""Goldens for training-step parity (tests/trainstep_parity_test.go): ten
AdamW steps of a Houlsby-adapter classifier on all-MiniLM-L6-v2, in PyTorch.

Run by scripts/goldens.sh (`make goldens`) from the repository root, offline
(HF_HUB_OFFLINE=1): the model loads from build/assets/all-MiniLM-L6-v2 and the
texts from build/assets/spam/train.jsonl (both made by `make assets`).

The model, in plain PyTorch on top of transformers' BertModel (AdapterHub's
`adapters` is not used here, so the adapter formula is exactly the one below
and nothing else; tests/encoder_parity_test.go separately checks that our
placement equals AdapterHub's DoubleSeqBnConfig):

  * BertModel (float32, eager attention, with the checkpoint's pooler),
    dropout off (eval mode: every nn.Dropout is the identity).
  * Houlsby adapters, m = 64, ReLU, in every layer after the attention output
    projection (BertSelfOutput) and after the FFN output projection
    (BertOutput), before the residual add and LayerNorm:
        h   = dense(y)                    (dropout is off)
        out = LayerNorm(x + adapter(h))
        adapter(h) = h + up(relu(down(h)))
    The adapter modules are registered as `adapter` on BertSelfOutput and
    BertOutput, so their parameter names are exactly the Go model's:
    encoder.layer.N.{attention.output,output}.adapter.{down,up}.{weight,bias}.
    All four tensors start N(0, 0.02^2) from a seeded generator (non-zero
    up-projection and biases, so every gradient path is exercised).
  * Head: pooled = tanh(pooler.dense(h[:, 0])) (from the checkpoint),
    logits = classifier(pooled), classifier (2, 384) N(0, 0.02^2), bias 0;
    loss = cross-entropy, mean over the batch.
  * Trainable: adapters, every LayerNorm (embeddings + 2 per layer), the
    pooler and the classifier. Everything else is frozen.
  * torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8), weight decay
    0.01 on weights, 0 on biases and LayerNorm parameters, constant LR.
  * 10 steps on 10 fixed batches of 8 real SpamAssassin texts (4 ham, 4 spam
    each, order within a batch shuffled by a seeded RNG), BertTokenizerFast,
    max_length 64, truncation, padded to the longest text of each batch.

Writes into tests/golden/trainstep/:
  init.safetensors    the initial adapter and classifier tensors (our names)
  batches.json        per step: input_ids, token_type_ids, attention_mask
                      (B x T, row-major lists), labels (B), B, T
  losses.json         {"losses": the loss of each step before its update
                      (10 values), "logits": each step's logits, ...}
  final.safetensors   every trainable tensor after the 10 updates
  grads.safetensors   s{k}/<name>: the gradient of every trainable tensor at
                      step k (k = 0..9), for replaying the optimizer on the
                      reference's gradients and for diagnosing a mismatch
  meta.json           versions and settings
  kinks.json          per step, the adapter units with a real token whose
                      pre-activation |z| < 1e-5 (ReLU kinks, see KINK)

After the float32 run the script runs itself again with TRAINSTEP_F64=1
(skip with TRAINSTEP_NO_F64=1): the same experiment in float64 (same
batches, same initial values, cast from the float32 ones), writing only
tests/golden/trainstep64/{final,grads}.safetensors (cast to float32) and
losses.json: an "exact arithmetic" yardstick that shows how far float32
PyTorch itself is from the exact trajectory (used by the Go test, when
present, to put the Go-vs-PyTorch differences in scale).

With TRAINSTEP_DIAG=1 (diagnosis only, not used by the tests) also:
  diag.safetensors    s{k}/z/<layer>.<attn|ffn>: each adapter's pre-activation
                      down(h) (B, T, M); s{k}/pooler.pre: pooler.dense output
                      before tanh (B, C)
"""

import json
import os
import types

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.numpy import save_file
from torch import nn
from transformers import BertModel, BertTokenizerFast

MODEL = "build/assets/all-MiniLM-L6-v2"
DATA = "build/assets/spam/train.jsonl"
F64 = os.environ.get("TRAINSTEP_F64") == "1"
OUT = "tests/golden/trainstep64" if F64 else "tests/golden/trainstep"
M = 64              # adapter bottleneck
STEPS = 10
BATCH = 8
MAX_LEN = 64
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
WD = 0.01
INIT_STD = 0.02     # BERT's initializer_range
SEED = 20261125

torch.set_num_threads(2)
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
os.makedirs(OUT, exist_ok=True)

# --- data: the first 4*STEPS ham and spam texts of the training split -------
ham, spam = [], []
with open(DATA, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if not r["text"].strip():
            continue
        (spam if r["label"] == "spam" else ham).append(r["text"])
half = BATCH // 2
assert len(ham) >= half * STEPS and len(spam) >= half * STEPS, (len(ham), len(spam))
rng = np.random.default_rng(SEED)
tok = BertTokenizerFast.from_pretrained(MODEL)
batches = []
for s in range(STEPS):
    rows = [(t, 0) for t in ham[s * half:(s + 1) * half]] + [(t, 1) for t in spam[s * half:(s + 1) * half]]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    enc = tok([t for t, _ in rows], max_length=MAX_LEN, truncation=True, padding="longest", return_tensors="pt")
    batches.append({
        "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"], "labels": torch.tensor([y for _, y in rows]),
    })


# --- model -------------------------------------------------------------------
class Bottleneck(nn.Module):
    """adapter(h) = h + up(relu(down(h))) with down (M, C), up (C, M)."""

    def __init__(self, c, m):
        super().__init__()
        self.down = nn.Linear(c, m)
        self.up = nn.Linear(m, c)

    def forward(self, h):
        return h + self.up(torch.relu(self.down(h)))


def adapted_forward(self, hidden_states, input_tensor):
    """BertSelfOutput.forward / BertOutput.forward with the adapter between
    the (dropout of the) output projection and the residual add + LayerNorm."""
    h = self.dropout(self.dense(hidden_states))
    return self.LayerNorm(input_tensor + self.adapter(h))


bert = BertModel.from_pretrained(MODEL, add_pooling_layer=True, attn_implementation="eager",
                                 torch_dtype=torch.float32)
assert bert.pooler is not None
C = bert.config.hidden_size
gen = torch.Generator().manual_seed(SEED)
for layer in bert.encoder.layer:
    for mod in (layer.attention.output, layer.output):
        mod.adapter = Bottleneck(C, M)
        with torch.no_grad():
            for p in (mod.adapter.down.weight, mod.adapter.down.bias, mod.adapter.up.weight, mod.adapter.up.bias):
                p.copy_(torch.randn(p.shape, generator=gen) * INIT_STD)
        mod.forward = types.MethodType(adapted_forward, mod)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = bert
        self.classifier = nn.Linear(C, 2)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.randn(self.classifier.weight.shape, generator=gen) * INIT_STD)
            self.classifier.bias.zero_()

    def forward(self, b):
        out = self.bert(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"],
                        attention_mask=b["attention_mask"])
        return self.classifier(out.pooler_output)


model = Classifier().float()
if F64:
    model = model.double()  # after the float32 init: identical starting values
model.eval()  # dropout off (every nn.Dropout is the identity in eval mode)


def our_name(n):
    return n[len("bert."):] if n.startswith("bert.") else n


def is_trainable(name):
    return ".adapter." in name or "LayerNorm." in name or name.startswith("pooler.") or name.startswith("classifier.")


def no_decay(name):
    return name.endswith(".bias") or "LayerNorm." in name


params = {}
for n, p in model.named_parameters():
    name = our_name(n)
    p.requires_grad_(is_trainable(name))
    if p.requires_grad:
        params[name] = p
n_adapter = sum(1 for n in params if ".adapter." in n)
assert n_adapter == 6 * 2 * 4, n_adapter
assert sum(1 for n in params if "LayerNorm." in n) == 2 * (1 + 2 * 6)

init = {n: p.detach().numpy().astype(np.float32).copy()
        for n, p in params.items() if ".adapter." in n or n.startswith("classifier.")}

decay = [p for n, p in params.items() if not no_decay(n)]
nodecay = [p for n, p in params.items() if no_decay(n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=LR, betas=BETAS, eps=EPS, foreach=False)

DIAG = os.environ.get("TRAINSTEP_DIAG") == "1"
diag, cur = {}, {}


def keep(key):
    def hook(_mod, _inp, out):
        cur[key] = out.detach().numpy().astype(np.float32).copy()
    return hook


for i, layer in enumerate(bert.encoder.layer):
    layer.attention.output.adapter.down.register_forward_hook(keep(f"z/{i}.attn"))
    layer.output.adapter.down.register_forward_hook(keep(f"z/{i}.ffn"))
bert.pooler.dense.register_forward_hook(keep("pooler.pre"))

# ReLU kinks: adapter units where some real token's pre-activation z is
# within KINK of 0. Two float32 implementations that sum in different orders
# differ in z by ~1e-6 (hidden states agree to ~5e-6, times |w| ~ 0.02 over
# 384 terms), so such a token can be active in one and not in the other;
# that unit's gradients then legitimately differ by the token's share.
KINK = 1e-5
kinks = []
losses, logits_all = [], []
grads = {}
for s, b in enumerate(batches):
    opt.zero_grad(set_to_none=True)
    logits = model(b)
    loss = F.cross_entropy(logits, b["labels"])
    loss.backward()
    losses.append(float(loss.item()))
    logits_all.append(logits.detach().numpy().astype(np.float32).tolist())
    if DIAG:
        for k, v in cur.items():
            diag[f"s{s}/{k}"] = v
    real = b["attention_mask"].numpy().astype(bool)
    for i in range(len(bert.encoder.layer)):
        for site in ("attn", "ffn"):
            z = np.abs(cur[f"z/{i}.{site}"][real])  # (real tokens, M)
            units = sorted(set(np.where(z < KINK)[1].tolist()))
            if units:
                kinks.append({"step": s, "layer": i, "ffn": site == "ffn", "units": units,
                              "min_abs_z": float(z[:, units].min())})
    for n, p in params.items():
        grads[f"s{s}/{n}"] = p.grad.detach().numpy().astype(np.float32).copy()
    opt.step()
    print(f"step {s}: T={b['input_ids'].shape[1]} loss {losses[-1]:.8f}")

final = {n: p.detach().numpy().astype(np.float32).copy() for n, p in params.items()}

save_file(final, os.path.join(OUT, "final.safetensors"))
save_file(grads, os.path.join(OUT, "grads.safetensors"))
if F64:
    with open(os.path.join(OUT, "losses.json"), "w") as f:
        json.dump({"losses": losses, "dtype": "float64"}, f, indent=1)
    print("wrote", OUT, "(float64)")
    raise SystemExit(0)
save_file(init, os.path.join(OUT, "init.safetensors"))
if DIAG:
    save_file(diag, os.path.join(OUT, "diag.safetensors"))
with open(os.path.join(OUT, "batches.json"), "w") as f:
    json.dump([{
        "B": int(b["input_ids"].shape[0]), "T": int(b["input_ids"].shape[1]),
        "input_ids": b["input_ids"].reshape(-1).tolist(),
        "token_type_ids": b["token_type_ids"].reshape(-1).tolist(),
        "attention_mask": b["attention_mask"].reshape(-1).tolist(),
        "labels": b["labels"].tolist(),
    } for b in batches], f)
with open(os.path.join(OUT, "losses.json"), "w") as f:
    json.dump({"losses": losses, "logits": logits_all}, f, indent=1)
with open(os.path.join(OUT, "kinks.json"), "w") as f:
    json.dump({"threshold": KINK, "kinks": kinks}, f, indent=1)
with open(os.path.join(OUT, "meta.json"), "w") as f:
    json.dump({
        "torch": torch.__version__, "transformers": transformers.__version__,
        "m": M, "act": "relu", "steps": STEPS, "batch": BATCH, "max_length": MAX_LEN,
        "lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WD, "init_std": INIT_STD, "seed": SEED,
        "trainable": sorted(params), "no_decay": sorted(n for n in params if no_decay(n)),
        "seq_lengths": [int(b["input_ids"].shape[1]) for b in batches],
    }, f, indent=1)
print("wrote", OUT, f"({len(params)} trainable tensors, {sum(p.numel() for p in params.values())} values)")

# The float64 yardstick, in a fresh process (same script, TRAINSTEP_F64=1).
if os.environ.get("TRAINSTEP_NO_F64") != "1":
    import subprocess  # noqa: E402
    import sys  # noqa: E402
    subprocess.run([sys.executable, __file__], env=dict(os.environ, TRAINSTEP_F64="1"), check=True)
