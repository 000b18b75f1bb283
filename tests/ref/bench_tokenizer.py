"""Hugging Face side of the tokenizer benchmark in docs/benchmarks.md.

Encodes the first 1,000 texts of build/assets/spam/train.jsonl (the texts of
Go's BenchmarkEncode in model/tokenizer) with BertTokenizerFast, without and
with truncation at 128: one text per call in a loop (single-threaded, as the
Go benchmark), and as one batch call (the Rust core's own thread pool).
Prints the median tokens/s over 5 runs of each.

    .venv-ref/bin/python tests/ref/bench_tokenizer.py
"""
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from transformers import BertTokenizerFast  # noqa: E402

tok = BertTokenizerFast.from_pretrained("build/assets/all-MiniLM-L6-v2")
texts = []
with open("build/assets/spam/train.jsonl") as f:
    for line in f:
        texts.append(json.loads(line)["text"])
        if len(texts) == 1000:
            break


def loop(kw):
    n = 0
    for s in texts:
        n += len(tok(s, **kw)["input_ids"])
    return n


def batch(kw):
    return sum(len(x) for x in tok(texts, **kw)["input_ids"])


for name, kw in [("full", {}), ("max128", {"truncation": True, "max_length": 128})]:
    for how, fn in [("loop", loop), ("batch", batch)]:
        fn(kw)  # warm-up
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            n = fn(kw)
            rates.append(n / (time.perf_counter() - t0))
        print(f"hf {name:6s} {how:5s} median {statistics.median(rates):12,.0f} tokens/s")
