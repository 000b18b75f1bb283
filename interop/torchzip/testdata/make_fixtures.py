"""Writes the torch.save fixtures of interop/torchzip's tests (committed; run
from the repository root with the reference env when they need changing):

    .venv-ref/bin/python interop/torchzip/testdata/make_fixtures.py

  state_dict.bin   a module's state_dict (an OrderedDict with _metadata,
                   saved by torch.save's zip format): float32, float16,
                   bfloat16 and float64 tensors, a transposed (strided) view,
                   a tensor at an offset into a shared storage, a scalar
  plain_dict.bin   a plain dict of tensors (what AdapterHub's save_adapter
                   writes: a filtered dict comprehension of the state_dict)
  parameter.bin    a dict holding an nn.Parameter (torch._utils._rebuild_parameter)
  not_tensors.bin  a dict of a string and a list: not a state dict of tensors
  legacy.bin       torch.save(..., _use_new_zipfile_serialization=False)

The values are small integers and halves, exact in every dtype, so the Go
test knows them without reading any file: see torchzip_test.go.
"""

import collections

import torch
from torch import nn

OUT = "interop/torchzip/testdata/"

m = nn.Module()
m.lin = nn.Linear(3, 2)
m.register_buffer("f16", torch.arange(4, dtype=torch.float16) / 2)
m.register_buffer("b16", torch.arange(3, dtype=torch.bfloat16) - 1)
m.register_buffer("d64", torch.arange(6, dtype=torch.float64).reshape(2, 3))
with torch.no_grad():
    m.lin.weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    m.lin.bias.copy_(torch.tensor([-1.0, 0.5]))
sd = m.state_dict()
base = torch.arange(12, dtype=torch.float32)
sd["strided"] = base.reshape(3, 4).t()  # (4, 3), stride (1, 4)
sd["offset"] = base[5:8]               # storage offset 5 into the same storage
sd["scalar"] = torch.tensor(2.5)
assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
torch.save(sd, OUT + "state_dict.bin")

torch.save({"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}, OUT + "plain_dict.bin")
torch.save({"p": nn.Parameter(torch.full((2,), 3.0))}, OUT + "parameter.bin")
torch.save({"name": "x", "list": [1, 2]}, OUT + "not_tensors.bin")
torch.save({"a": torch.ones(1)}, OUT + "legacy.bin", _use_new_zipfile_serialization=False)
print("wrote", OUT)
