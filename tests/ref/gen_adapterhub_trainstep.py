"""Goldens for training parity with AdapterHub
(tests/adapterhub_trainstep_test.go): twenty AdamW steps of the
"adapterhub-houlsby" preset on all-MiniLM-L6-v2, trained by AdapterHub's
`adapters` library from initial weights exported by this project.

Run by scripts/goldens.sh (`make goldens`) from the repository root, offline;
needs Go (it runs `go run ./tests/ref/initadapter`) and the assets of
`make assets`.

 1. `go run ./tests/ref/initadapter -c examples/spam-adapterhub.toml` writes
    the preset's untrained adapter (train.seed 42: adapters N(0, 0.02²) as
    AdapterHub's init_weights="bert", the cls_dense head's dense and
    classifier N(0, 0.02²), biases 0) as our adapter file
    (init/adapter.safetensors) and as an AdapterHub folder
    (init/adapterhub, train-gpu's export).
 2. AdapterHub: BertAdapterModel (float32, eager attention) loads that
    folder with load_adapter(use_safetensors=True): a DoubleSeqBnConfig
    adapter (reduction factor 16: m = 24, swish) and the default
    2-layer classification head (dense, tanh, classifier on [CLS]);
    train_adapter(name) freezes everything else (the LayerNorms included);
    eval mode: dropout off.
 3. torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8, foreach=False),
    weight decay 0.01 on weights and 0 on biases (train-gpu's rule,
    trainer.DecayFor), constant LR, no clipping; loss = cross-entropy, mean
    over the batch, from the head's logits.
 4. 20 steps on 20 batches of 8 real SpamAssassin training texts (4 ham,
    4 spam, shuffled by a seeded RNG), BertTokenizerFast, max_length 64,
    padded to the longest of each batch.

Writes into tests/golden/adapterhub_trainstep/:
  init/               step 1's adapter file and AdapterHub folder
  batches.json        per step: input_ids, token_type_ids, attention_mask
                      (B x T, row-major), labels, B, T
  losses.json         {"losses": each step's loss before its update}
  grads.safetensors   s{k}/<our name>: every trainable tensor's gradient at step k
  final.safetensors   every trainable tensor after the 20 updates (our names)
  meta.json           versions, settings, the trainable set and its
                      no-decay part (our names)

Then it runs itself again with ADAPTERHUB_TRAINSTEP_F64=1: the same
experiment in float64 from the same (float32) starting values, writing
tests/golden/adapterhub_trainstep64/{final,grads}.safetensors (cast to
float32) and losses.json, the yardstick of the parity criterion.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.numpy import save_file
from transformers import BertTokenizerFast

import adapters
from adapters import BertAdapterModel

MODEL = "build/assets/all-MiniLM-L6-v2"
DATA = "build/assets/spam/train.jsonl"
RUN = "examples/spam-adapterhub.toml"
F64 = os.environ.get("ADAPTERHUB_TRAINSTEP_F64") == "1"
BASE = "tests/golden/adapterhub_trainstep"
OUT = BASE + "64" if F64 else BASE
INIT = BASE + "/init"
NAME = "spam"
STEPS = 20
BATCH = 8
MAX_LEN = 64
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
WD = 0.01
SEED = 20261202

torch.set_num_threads(2)
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
os.makedirs(OUT, exist_ok=True)

if not F64:
    subprocess.run(["go", "run", "./tests/ref/initadapter", "-c", RUN, "-out", INIT, "-name", NAME], check=True)

# --- data -------------------------------------------------------------------
ham, spam = [], []
with open(DATA, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if r["text"].strip():
            (spam if r["label"] == "spam" else ham).append(r["text"])
half = BATCH // 2
rng = np.random.default_rng(SEED)
tok = BertTokenizerFast.from_pretrained(MODEL)
batches = []
for s in range(STEPS):
    rows = [(t, 0) for t in ham[s * half:(s + 1) * half]] + [(t, 1) for t in spam[s * half:(s + 1) * half]]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    enc = tok([t for t, _ in rows], max_length=MAX_LEN, truncation=True, padding="longest", return_tensors="pt")
    batches.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                    "attention_mask": enc["attention_mask"], "labels": torch.tensor([y for _, y in rows])})

# --- model --------------------------------------------------------------------
model = BertAdapterModel.from_pretrained(MODEL, attn_implementation="eager", dtype=torch.float32)
name = model.load_adapter(INIT + "/adapterhub", use_safetensors=True)
assert name == NAME, name
model.train_adapter(name)
model.active_head = name
assert str(model.active_adapters) == f"Stack[{name}]", model.active_adapters
if F64:
    model = model.double()
model.eval()  # dropout off

ADAPTER = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(attention\.output|output)\.adapters\.%s\.(adapter_down\.0|adapter_up)\.(weight|bias)$" % NAME)
HEAD = {f"heads.{NAME}.1.": "head.dense.", f"heads.{NAME}.4.": "classifier."}


def our_name(n):
    m = ADAPTER.match(n)
    if m:
        site = "attention.output" if m.group(2) == "attention.output" else "output"
        proj = "down" if m.group(3) == "adapter_down.0" else "up"
        return f"encoder.layer.{m.group(1)}.{site}.adapter.{proj}.{m.group(4)}"
    for k, v in HEAD.items():
        if n.startswith(k):
            return v + n[len(k):]
    raise ValueError("unexpected trainable parameter " + n)


params = {our_name(n): p for n, p in model.named_parameters() if p.requires_grad}
assert len(params) == 6 * 2 * 4 + 4, sorted(params)


def no_decay(n):
    return n.endswith(".bias") or "LayerNorm." in n


opt = torch.optim.AdamW([
    {"params": [p for n, p in params.items() if not no_decay(n)], "weight_decay": WD},
    {"params": [p for n, p in params.items() if no_decay(n)], "weight_decay": 0.0},
], lr=LR, betas=BETAS, eps=EPS, foreach=False)

losses, grads = [], {}
for s, b in enumerate(batches):
    opt.zero_grad(set_to_none=True)
    out = model(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"])
    loss = F.cross_entropy(out.logits, b["labels"])
    loss.backward()
    losses.append(float(loss.item()))
    for n, p in params.items():
        grads[f"s{s}/{n}"] = p.grad.detach().numpy().astype(np.float32).copy()
    opt.step()
    print(f"step {s}: T={b['input_ids'].shape[1]} loss {losses[-1]:.8f}")

final = {n: p.detach().numpy().astype(np.float32).copy() for n, p in params.items()}
save_file(final, os.path.join(OUT, "final.safetensors"))
save_file(grads, os.path.join(OUT, "grads.safetensors"))
with open(os.path.join(OUT, "losses.json"), "w") as f:
    json.dump({"losses": losses, "dtype": "float64" if F64 else "float32"}, f, indent=1)
if F64:
    print("wrote", OUT, "(float64)")
    raise SystemExit(0)
with open(os.path.join(OUT, "batches.json"), "w") as f:
    json.dump([{
        "B": int(b["input_ids"].shape[0]), "T": int(b["input_ids"].shape[1]),
        "input_ids": b["input_ids"].reshape(-1).tolist(),
        "token_type_ids": b["token_type_ids"].reshape(-1).tolist(),
        "attention_mask": b["attention_mask"].reshape(-1).tolist(),
        "labels": b["labels"].tolist(),
    } for b in batches], f)
with open(os.path.join(OUT, "meta.json"), "w") as f:
    json.dump({
        "torch": torch.__version__, "transformers": transformers.__version__, "adapters": adapters.__version__,
        "run_file": RUN, "adapter_config": model.adapters_config.get(name).to_dict(),
        "head_config": model.heads[name].config,
        "steps": STEPS, "batch": BATCH, "max_length": MAX_LEN, "lr": LR, "betas": BETAS, "eps": EPS,
        "weight_decay": WD, "seed": SEED, "trainable": sorted(params), "no_decay": sorted(n for n in params if no_decay(n)),
        "seq_lengths": [int(b["input_ids"].shape[1]) for b in batches],
    }, f, indent=1, default=str)
print("wrote", OUT, f"({len(params)} trainable tensors, {sum(p.numel() for p in params.values())} values)")

if os.environ.get("ADAPTERHUB_TRAINSTEP_NO_F64") != "1":
    subprocess.run([sys.executable, __file__], env=dict(os.environ, ADAPTERHUB_TRAINSTEP_F64="1"), check=True)
