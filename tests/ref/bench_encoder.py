"""PyTorch side of docs/benchmarks.md, encoder section: all-MiniLM-L6-v2 at B=32, T=128
(every token real, the same ids as model.BenchmarkEncoder), on the CPU with
torch.set_num_threads(2) (the Go benchmark's GOMAXPROCS on the 2-core
development machine).

  forward:              BertModel eval forward under torch.no_grad()
  train-step-adapters:  AdapterHub Houlsby adapters (DoubleSeqBnConfig,
                        m = 64, relu), adapters + LayerNorms trainable, train
                        mode (dropout), pooler + linear head + cross-entropy,
                        forward + backward

Each is warmed up once, then timed RUNS times in this one process; the
median is reported (tokens/s = B·T / median wall seconds), with the process
CPU time per run (time.process_time, all threads), which other load on a
shared machine disturbs far less than wall time.

  .venv-ref/bin/python tests/ref/bench_encoder.py [RUNS]
"""

import json
import os
import statistics
import sys
import time

import torch
from transformers import BertModel

MODEL = "build/assets/all-MiniLM-L6-v2"
B, T = 32, 128
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5

torch.set_num_threads(2)
torch.manual_seed(0)
ids = torch.tensor([1000 + (i * 7919) % 20000 for i in range(B * T)], dtype=torch.long).view(B, T)
mask = torch.ones(B, T, dtype=torch.long)
labels = torch.tensor([i % 2 for i in range(B)])


def timed(fn):
    """Wall seconds and process CPU seconds (all threads) of each run."""
    fn()  # warm-up
    ts, cs = [], []
    for _ in range(RUNS):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return ts, cs


results = {}

model = BertModel.from_pretrained(MODEL, add_pooling_layer=False).eval()


def forward():
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)


results["forward"] = timed(forward)

import adapters  # noqa: E402
from adapters import DoubleSeqBnConfig  # noqa: E402

amodel = BertModel.from_pretrained(MODEL, add_pooling_layer=True)
adapters.init(amodel)
amodel.add_adapter("h", config=DoubleSeqBnConfig(reduction_factor=384 / 64, non_linearity="relu"))
amodel.train_adapter("h")
assert "h" in str(amodel.active_adapters), f"adapter not active: {amodel.active_adapters}"
for n, p in amodel.named_parameters():
    if "LayerNorm" in n or n.startswith("pooler."):
        p.requires_grad_(True)
head = torch.nn.Linear(384, 2)
amodel.train()


def train_step():
    out = amodel(input_ids=ids, attention_mask=mask)
    loss = torch.nn.functional.cross_entropy(head(torch.nn.functional.dropout(out.pooler_output, 0.1)), labels)
    loss.backward()
    amodel.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)


results["train-step-adapters"] = timed(train_step)

report = {
    "torch": torch.__version__, "threads": torch.get_num_threads(), "B": B, "T": T, "runs": RUNS,
    "loadavg_after": os.getloadavg(),
}
for k, (ts, cs) in results.items():
    med = statistics.median(ts)
    report[k] = {"median_s": med, "tokens_per_s": B * T / med, "runs_s": ts,
                 "median_cpu_s": statistics.median(cs), "runs_cpu_s": cs}
print(json.dumps(report, indent=1))
