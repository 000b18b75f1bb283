"""Goldens for the Go BERT encoder (model.Model): Hugging Face outputs of
all-MiniLM-L6-v2 on real SpamAssassin texts.

Run by scripts/goldens.sh from the repository root, offline. Loads the model
from the local folder build/assets/all-MiniLM-L6-v2 and texts from
build/assets/spam/validation.jsonl (both made by `make assets`). Writes into
tests/golden/encoder/:

  minilm.safetensors
    batch{k}.input_ids, batch{k}.token_type_ids, batch{k}.attention_mask
        (B, T_k) I32: BertTokenizerFast, max_length 128, truncation, padded
        to the longest text of the batch (so the Go test does not depend on
        the Go tokenizer)
    batch{k}.hidden   (B, T_k, 384) F32: transformers BertModel
        last_hidden_state (eval mode, float32)
    st_embeddings     (n, 384) F32: sentence-transformers encode() of the
        same texts (mean pooling over the mask, then L2 normalisation) with
        max_seq_length 128, so its tokens are the ones above
    adapter.hidden    (B, T_0, 384) F32: BertModel with an AdapterHub
        Houlsby adapter (DoubleSeqBnConfig: after attention and after the
        FFN, reduction factor 16 -> m = 24, swish) whose weights are set to
        random values (so the adapters are far from the identity), on batch 0
    adapter/<name>    the adapter tensors under the Go model's names
        (encoder.layer.i.attention.output.adapter.down.weight, ...)
  meta.json  versions, counts, the adapter key mapping
"""

import json
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import BertModel, BertTokenizerFast

MODEL = "build/assets/all-MiniLM-L6-v2"
SPAM = "build/assets/spam/validation.jsonl"
OUT = "tests/golden/encoder"
N_TEXTS = 64
BATCH = 16
MAX_LEN = 128

torch.set_num_threads(2)
torch.manual_seed(0)
os.makedirs(OUT, exist_ok=True)

texts = []
with open(SPAM, encoding="utf-8") as f:
    for line in f:
        t = json.loads(line)["text"]
        if t.strip():
            texts.append(t)
        if len(texts) == N_TEXTS:
            break
assert len(texts) == N_TEXTS, f"only {len(texts)} texts in {SPAM}"

tok = BertTokenizerFast.from_pretrained(MODEL)
model = BertModel.from_pretrained(MODEL, add_pooling_layer=False, attn_implementation="eager").eval()

out = {}
n_tokens = 0
with torch.no_grad():
    for k in range(0, N_TEXTS, BATCH):
        enc = tok(texts[k:k + BATCH], max_length=MAX_LEN, truncation=True,
                  padding="longest", return_tensors="pt")
        h = model(**enc).last_hidden_state
        b = k // BATCH
        for name in ("input_ids", "token_type_ids", "attention_mask"):
            out[f"batch{b}.{name}"] = enc[name].numpy().astype(np.int32)
        out[f"batch{b}.hidden"] = h.numpy().astype(np.float32)
        n_tokens += int(enc["attention_mask"].sum())

# sentence-transformers: the reference for mean-pooled sentence embeddings.
from sentence_transformers import SentenceTransformer  # noqa: E402

st = SentenceTransformer(MODEL, device="cpu")
st.max_seq_length = MAX_LEN
emb = st.encode(texts, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=False)
out["st_embeddings"] = emb.astype(np.float32)

# AdapterHub Houlsby adapter with random weights, on batch 0.
import adapters  # noqa: E402
from adapters import DoubleSeqBnConfig  # noqa: E402

amodel = BertModel.from_pretrained(MODEL, add_pooling_layer=False, attn_implementation="eager")
adapters.init(amodel)
cfg = DoubleSeqBnConfig(reduction_factor=16, non_linearity="swish")
amodel.add_adapter("h", config=cfg)
amodel.set_active_adapters("h")
amodel.eval()
g = torch.Generator().manual_seed(1234)
mapping = {}
with torch.no_grad():
    for key, p in amodel.named_parameters():
        if ".adapters.h." not in key:
            continue
        p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        # encoder.layer.3.attention.output.adapters.h.adapter_down.0.weight
        # -> encoder.layer.3.attention.output.adapter.down.weight
        prefix, rest = key.split(".adapters.h.")
        proj = {"adapter_down.0.weight": "down.weight", "adapter_down.0.bias": "down.bias",
                "adapter_up.weight": "up.weight", "adapter_up.bias": "up.bias"}[rest]
        name = prefix + ".adapter." + proj
        mapping[key] = name
        out["adapter/" + name] = p.detach().numpy().astype(np.float32).copy()
    enc = {n: torch.from_numpy(out[f"batch0.{n}"].astype(np.int64))
           for n in ("input_ids", "token_type_ids", "attention_mask")}
    out["adapter.hidden"] = amodel(**enc).last_hidden_state.numpy().astype(np.float32)
assert len(mapping) == 6 * 2 * 4, f"expected 48 adapter tensors, got {len(mapping)}: {sorted(mapping)}"

save_file(out, os.path.join(OUT, "minilm.safetensors"))
meta = {
    "torch": torch.__version__, "transformers": transformers.__version__,
    "adapters": adapters.__version__,
    "sentence_transformers": __import__("sentence_transformers").__version__,
    "texts": N_TEXTS, "batch": BATCH, "max_length": MAX_LEN, "real_tokens": n_tokens,
    "adapter_config": cfg.to_dict(), "adapter_keys": mapping,
}
with open(os.path.join(OUT, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1, sort_keys=True, default=str)
print("wrote", OUT, f"({N_TEXTS} texts, {n_tokens} real tokens)")
