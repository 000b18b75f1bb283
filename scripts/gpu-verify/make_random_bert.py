#!/usr/bin/env python3
"""Writes a BERT folder with random weights (config.json, model.safetensors
in bf16) for `train-gpu bench`: the timing of a training step does not
depend on the values, and a BERT-base checkpoint (440 MB) is too big to
carry in the verification bundle. Standard library only.

  make_random_bert.py --shape bert-base --out DIR
  make_random_bert.py --shape smoke --out DIR     # tiny, for the rehearsal

Values are bf16 numbers of magnitude 2^-8 .. 2^-4 with random signs (random
bytes, with the exponent bits of every high byte forced into that range):
small enough that nothing overflows through the layers, made at memory
speed without numpy or torch.
"""
import argparse
import json
import os
import struct

SHAPES = {
    # name: (layers, hidden, heads, ffn, vocab, positions)
    "bert-base": (12, 768, 12, 3072, 30522, 512),
    "bert-large": (24, 1024, 16, 4096, 30522, 512),
    "smoke": (2, 64, 4, 128, 2000, 64),
}


def tensors(L, C, F, V, P):
    """The tensors of a Hugging Face BertModel with pooler, as model/names.go names them."""
    out = [
        ("embeddings.word_embeddings.weight", (V, C)),
        ("embeddings.position_embeddings.weight", (P, C)),
        ("embeddings.token_type_embeddings.weight", (2, C)),
        ("embeddings.LayerNorm.weight", (C,)),
        ("embeddings.LayerNorm.bias", (C,)),
    ]
    for l in range(L):
        p = f"encoder.layer.{l}."
        for lin, shape in (
            ("attention.self.query", (C, C)),
            ("attention.self.key", (C, C)),
            ("attention.self.value", (C, C)),
            ("attention.output.dense", (C, C)),
            ("intermediate.dense", (F, C)),
            ("output.dense", (C, F)),
        ):
            out += [(p + lin + ".weight", shape), (p + lin + ".bias", (shape[0],))]
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            out += [(p + ln + ".weight", (C,)), (p + ln + ".bias", (C,))]
    out += [("pooler.dense.weight", (C, C)), ("pooler.dense.bias", (C,))]
    return out


def random_bf16(n):
    """n little-endian bf16 values, |v| in [2^-8, 2^-4), random signs."""
    buf = bytearray(os.urandom(2 * n))
    # High byte: sign bit kept, then the top 7 exponent bits; 0x3b..0x3d
    # with the low byte's top bit give biased exponents 118..123.
    table = bytes((b & 0x80) | (0x3B + (b & 0x7F) % 3) for b in range(256))
    buf[1::2] = bytes(buf[1::2]).translate(table)
    return buf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="bert-base")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    L, C, NH, F, V, P = SHAPES[args.shape]
    os.makedirs(args.out, exist_ok=True)
    cfg = {
        "model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu",
        "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": NH, "intermediate_size": F,
        "vocab_size": V, "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
        "position_embedding_type": "absolute", "_random": "scripts/gpu-verify/make_random_bert.py",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    header, off, specs = {}, 0, tensors(L, C, F, V, P)
    for name, shape in specs:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    header["__metadata__"] = {"format": "pt", "note": "random weights for benchmarks"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = os.path.join(args.out, ".model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape in specs:
            n = 1
            for d in shape:
                n *= d
            f.write(random_bf16(n))
    os.replace(tmp, os.path.join(args.out, "model.safetensors"))
    print(f"make_random_bert: {args.shape} ({L} layers, d={C}) -> {args.out} ({off / 2**20:.0f} MiB of bf16 weights)")


if __name__ == "__main__":
    main()
