"""Golden safetensors files written by the reference implementation.

Run from the repository root with the reference venv (`make goldens` does):
    .venv-ref/bin/python tests/ref/gen_safetensors.py
Writes into tests/golden/safetensors/:
  py_f32.safetensors    F32 tensors only, metadata {"format": "pt"}: the
                        reference writer's layout for a single dtype, which our
                        Go writer must reproduce byte for byte.
  py_mixed.safetensors  F32, F16, BF16, I64, U8, BOOL, a scalar and an empty
                        tensor, with metadata.
  py_mixed.json         for each tensor of py_mixed: dtype, shape and the
                        values as float64 (exact for every dtype used).
"""
import json
import os

import safetensors
import torch
from safetensors.torch import save_file

OUT = os.path.join("tests", "golden", "safetensors")
os.makedirs(OUT, exist_ok=True)

g = torch.Generator().manual_seed(1234)

f32 = {
    "embeddings.word_embeddings.weight": torch.randn(7, 4, generator=g),
    "encoder.layer.0.attention.self.query.bias": torch.randn(4, generator=g),
    "a.scalar": torch.tensor(3.5),
    "z.empty": torch.zeros(0, 3),
}
save_file(f32, os.path.join(OUT, "py_f32.safetensors"), metadata={"format": "pt"})

mixed = {
    "w.f32": torch.randn(2, 3, generator=g),
    "w.f16": torch.tensor([1.0, -2.0, 65504.0, 2.0**-24, 0.5, -0.0], dtype=torch.float16),
    "w.bf16": torch.randn(3, 2, generator=g).to(torch.bfloat16),
    "ids.i64": torch.tensor([[0, 1, 2, 511]], dtype=torch.int64),
    "mask.u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
    "flag.bool": torch.tensor([True, False, True]),
    "s.scalar": torch.tensor(-1.25, dtype=torch.float32),
    "e.empty": torch.zeros(2, 0, dtype=torch.float16),
}
meta = {"format": "pt", "note": 'quote " backslash \\ newline \n \u00fc'}
save_file(mixed, os.path.join(OUT, "py_mixed.safetensors"), metadata=meta)

names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL"}
desc = {
    "safetensors_version": safetensors.__version__,
    "metadata": meta,
    "tensors": {
        k: {"dtype": names[v.dtype], "shape": list(v.shape),
            "values": [float(x) for x in v.to(torch.float64).flatten().tolist()]}
        for k, v in mixed.items()
    },
}
with open(os.path.join(OUT, "py_mixed.json"), "w") as f:
    json.dump(desc, f, indent=1, sort_keys=True)
print("wrote", OUT)
