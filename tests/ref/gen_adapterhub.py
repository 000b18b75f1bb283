"""Goldens for AdapterHub interoperability in both directions
(tests/adapterhub_interop_test.go, and cmd/train-gpu's ONNX test, which
uses go-paper's adapter and texts.jsonl).

Run by scripts/goldens.sh (`make goldens`) from the repository root,
offline; needs Go (it builds and runs train-gpu) and `make assets`.

Ours into AdapterHub. train-gpu trains two adapters on the real
SpamAssassin training split, 40 steps each (the run files of the demo, with
--max-steps 40 and 50 evaluation examples to keep `make goldens` short):
  go-paper    examples/spam.toml: m = 64, ReLU, LayerNorms trained, BERT's
              pooler head (the paper's setup; the demo's configuration)
  go-preset   examples/spam-adapterhub.toml: the "adapterhub-houlsby" preset
and exports each with `train-gpu export --format adapterhub` into
<run>/adapterhub. AdapterHub (BertAdapterModel, adapters 1.3.0) loads each
folder with load_adapter(use_safetensors=True), applies the side file's
LayerNorms as the folder's README says, and computes the logits of the 500
texts below in eval mode.

AdapterHub's into ours. AdapterHub trains two adapters itself, 40 AdamW
steps (lr 1e-3, batch 16, dropout on, seed 1234) on the same training texts:
  ah-houlsby  DoubleSeqBnConfig() and add_classification_head's default head
              (2 layers, tanh), saved twice: with use_safetensors=True
              (ah-houlsby-safe: adapter.safetensors, model_head.safetensors)
              and without (ah-houlsby-bin: pytorch_adapter.bin,
              pytorch_model_head.bin, torch.save zip files)
  ah-variant  BnConfig on the FFN output only, reduction factor 12, ReLU,
              leave_out [0, 1], and a 1-layer head on the pooler output
              (use_pooler=True): our "pooler" head
and computes their logits in eval mode.

Texts: the first 500 non-empty texts of build/assets/spam/test.jsonl, then
validation.jsonl, in that order; BertTokenizerFast, max_length 128,
truncation; sorted by token count and padded to the longest in batches of
25 (less padding, same logits).

Writes into tests/golden/adapterhub/:
  go-paper/, go-preset/       the train-gpu runs (adapter.safetensors ...) and
                              their AdapterHub exports (adapterhub/)
  ah-houlsby-safe/, ah-houlsby-bin/, ah-variant/   AdapterHub's folders
  texts.jsonl                 the 500 texts, {"text", "label"}, in file order
  texts.safetensors           batch{k}.{input_ids,token_type_ids,attention_mask}
                              (I32, B x T), batch{k}.index (I32: positions in
                              texts.jsonl)
  logits.safetensors          <name> (500, labels) F32, in texts.jsonl order,
                              for go-paper, go-preset, ah-houlsby, ah-variant;
                              go-paper-no-side: go-paper without its side file
                              (to show what ignoring it costs)
  meta.json                   versions, settings, what each folder is
"""

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import BertTokenizerFast

import adapters
from adapters import BertAdapterModel, BnConfig, DoubleSeqBnConfig

MODEL = "build/assets/all-MiniLM-L6-v2"
SPAM = "build/assets/spam"
OUT = "tests/golden/adapterhub"
N_TEXTS = 500
BATCH = 25
MAX_LEN = 128
STEPS = 40
LABELS = ["ham", "spam"]

torch.set_num_threads(2)
torch.manual_seed(0)
if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(OUT)


def run(*args):
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


# --- ours, trained and exported by train-gpu -----------------------------------
with tempfile.TemporaryDirectory() as tmp:
    exe = os.path.join(tmp, "train-gpu")
    run("go", "build", "-o", exe, "./cmd/train-gpu")
    for name, cfg in (("go-paper", "examples/spam.toml"), ("go-preset", "examples/spam-adapterhub.toml")):
        d = os.path.join(OUT, name)
        run(exe, "train", "-c", cfg, "--max-steps", str(STEPS), "--device", "cpu", "--output", d,
            "--set", "data.max_eval_examples=50")
        run(exe, "export", "--format", "adapterhub", "--adapter", os.path.join(d, "adapter.safetensors"),
            "--model", MODEL, "--out", os.path.join(d, "adapterhub"), "--name", name.replace("-", "_"))

# --- texts ------------------------------------------------------------------------
texts = []
for split in ("test", "validation"):
    with open(os.path.join(SPAM, split + ".jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["text"].strip() and len(texts) < N_TEXTS:
                texts.append({"text": r["text"], "label": r["label"]})
assert len(texts) == N_TEXTS, len(texts)
with open(os.path.join(OUT, "texts.jsonl"), "w", encoding="utf-8") as f:
    for t in texts:
        f.write(json.dumps(t, ensure_ascii=False) + "\n")
tok = BertTokenizerFast.from_pretrained(MODEL)
lengths = [len(tok(t["text"], max_length=MAX_LEN, truncation=True)["input_ids"]) for t in texts]
order = sorted(range(N_TEXTS), key=lambda i: (lengths[i], i))
batches, tensors = [], {}
for k in range(0, N_TEXTS, BATCH):
    idx = order[k:k + BATCH]
    enc = tok([texts[i]["text"] for i in idx], max_length=MAX_LEN, truncation=True, padding="longest", return_tensors="pt")
    batches.append((idx, enc))
    for n in ("input_ids", "token_type_ids", "attention_mask"):
        tensors[f"batch{k // BATCH}.{n}"] = enc[n].numpy().astype(np.int32)
    tensors[f"batch{k // BATCH}.index"] = np.array(idx, dtype=np.int32)
save_file(tensors, os.path.join(OUT, "texts.safetensors"))


def logits_of(model):
    model.eval()
    out = np.zeros((N_TEXTS, model.heads[model.active_head].config["num_labels"]), dtype=np.float32)
    with torch.no_grad():
        for idx, enc in batches:
            out[idx] = model(**enc).logits.numpy()
    return out


def base():
    return BertAdapterModel.from_pretrained(MODEL, attn_implementation="eager")


logits = {}

# --- ours in AdapterHub -------------------------------------------------------------
for name in ("go-paper", "go-preset"):
    folder = os.path.join(OUT, name, "adapterhub")
    for side in (True, False):
        m = base()
        loaded = m.load_adapter(folder, use_safetensors=True)
        m.set_active_adapters(loaded)
        m.active_head = loaded
        if side:
            # The folder's README: the base model's LayerNorms trained with
            # the adapter travel in the side file.
            missing, unexpected = m.base_model.load_state_dict(load_file(folder + "/houlsby_side.safetensors"), strict=False)
            assert not unexpected, unexpected
            logits[name] = logits_of(m)
        elif name == "go-paper":
            logits[name + "-no-side"] = logits_of(m)

# --- AdapterHub's own ---------------------------------------------------------------------
train = []
with open(os.path.join(SPAM, "train.jsonl"), encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if r["text"].strip():
            train.append((r["text"], LABELS.index(r["label"])))


def train_adapterhub(name, config, head_kwargs):
    torch.manual_seed(1234)
    m = base()
    m.add_adapter(name, config=config)
    m.add_classification_head(name, num_labels=2, id2label=dict(enumerate(LABELS)), **head_kwargs)
    m.train_adapter(name)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(1234)
    m.train()
    for s in range(STEPS):
        rows = [train[i] for i in rng.choice(len(train), 16, replace=False)]
        enc = tok([t for t, _ in rows], max_length=MAX_LEN, truncation=True, padding="longest", return_tensors="pt")
        out = m(**enc, labels=torch.tensor([y for _, y in rows]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        if s % 10 == 9:
            print(f"{name} step {s + 1}: loss {out.loss.item():.4f}", flush=True)
    return m


m = train_adapterhub("ah_houlsby", DoubleSeqBnConfig(), {})
m.save_adapter(os.path.join(OUT, "ah-houlsby-safe"), "ah_houlsby", use_safetensors=True)
m.save_adapter(os.path.join(OUT, "ah-houlsby-bin"), "ah_houlsby")
logits["ah-houlsby"] = logits_of(m)

variant = BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=12, non_linearity="relu", leave_out=[0, 1])
m = train_adapterhub("ah_variant", variant, {"layers": 1, "use_pooler": True})
m.save_adapter(os.path.join(OUT, "ah-variant"), "ah_variant", use_safetensors=True)
logits["ah-variant"] = logits_of(m)

save_file(logits, os.path.join(OUT, "logits.safetensors"))
with open(os.path.join(OUT, "meta.json"), "w") as f:
    json.dump({
        "torch": torch.__version__, "transformers": transformers.__version__, "adapters": adapters.__version__,
        "texts": N_TEXTS, "batch": BATCH, "max_length": MAX_LEN, "train_steps": STEPS,
        "go-paper vs go-paper-no-side max |diff|": float(np.abs(logits["go-paper"] - logits["go-paper-no-side"]).max()),
    }, f, indent=1)
print("wrote", OUT)
