"""Writes a BERT folder with random weights (BertModel's own initialisation,
seed 0) for the speed benchmarks, where the weights' values do not matter:
config.json, model.safetensors (with pooler) and the tokenizer files of
--vocab-from (an uncased 30,522-word BERT vocabulary, e.g. all-MiniLM-L6-v2),
so `train-gpu bench --data` can tokenize for it.

  .venv-ref/bin/python tests/ref/make_bert.py --out build/bench/models/bert-base-random \\
      --layers 12 --hidden 768 --heads 12 --ffn 3072 --vocab-from build/assets/all-MiniLM-L6-v2

The same arguments give the same bytes (a stamp file records them, and an
up-to-date folder is left alone).
"""

import argparse
import json
import os
import shutil
import sys

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=3072)
    ap.add_argument("--vocab-from", required=True, help="a BERT folder whose tokenizer files are copied")
    a = ap.parse_args()
    spec = {"layers": a.layers, "hidden": a.hidden, "heads": a.heads, "ffn": a.ffn, "vocab_from": os.path.abspath(a.vocab_from)}
    stamp = os.path.join(a.out, "make_bert.json")
    if os.path.exists(stamp) and os.path.exists(os.path.join(a.out, "model.safetensors")):
        with open(stamp) as f:
            if json.load(f) == spec:
                print(f"make_bert: {a.out} is up to date")
                return
    for name in TOKENIZER_FILES[:1]:
        if not os.path.exists(os.path.join(a.vocab_from, name)):
            sys.exit(f"make_bert: {a.vocab_from} has no {name} (make assets)")

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                     intermediate_size=a.ffn, max_position_embeddings=512, type_vocab_size=2)
    model = BertModel(cfg, add_pooling_layer=True)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        src = os.path.join(a.vocab_from, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(a.out, name))
    with open(stamp, "w") as f:
        json.dump(spec, f)
    n = sum(p.numel() for p in model.parameters())
    print(f"make_bert: wrote {a.out} ({n:,} parameters)")


if __name__ == "__main__":
    main()
