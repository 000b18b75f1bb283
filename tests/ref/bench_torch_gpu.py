#!/usr/bin/env python3
"""PyTorch eager baseline for the GPU backend: one adapter-training step of a
post-LN BERT encoder with Houlsby adapters, frozen weights in bf16, trainable
tensors (adapters, LayerNorms, head) in fp32 under bf16 autocast, AdamW.

It is the yardstick for `go test -tags cuda -bench . ./gpu/` on the same card
(see docs/gpu-status.md). Only torch is needed (no transformers, no model hub:
the weights are random, which does not change the timing). The model mirrors
model/ and backend/backend.go: embeddings + LN, L x [QKV, softmax(QK^T/sqrt(HS))
with padding mask and dropout, output projection, adapter, add & LN, FFN with
erf GELU, adapter, add & LN], [CLS] pooler with tanh, linear head, cross
entropy. Frozen means free: frozen weights have requires_grad=False, so
autograd skips their weight gradients, as the Go backend does.

  python tests/ref/bench_torch_gpu.py --shape bert-base --steps 50
  python tests/ref/bench_torch_gpu.py --shape bert-large --sdpa   # fused attention
  python tests/ref/bench_torch_gpu.py --shape bert-base --compile # torch.compile (inductor)
  python tests/ref/bench_torch_gpu.py --smoke                     # tiny, CPU, a few steps

Prints one JSON line per configuration: ms/step, sequences/s, tokens/s.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {
    # name: (layers, hidden, heads, ffn)
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
    "minilm-l6": (6, 384, 12, 1536),
    "smoke": (2, 64, 4, 128),
}


class Adapter(nn.Module):
    """Houlsby bottleneck: h + W_up act(W_down h + b_down) + b_up, W_up = 0."""

    def __init__(self, d, m):
        super().__init__()
        self.down = nn.Linear(d, m)
        self.up = nn.Linear(m, d)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(F.relu(self.down(h)))


class Layer(nn.Module):
    def __init__(self, d, nh, ff, m, p, sdpa):
        super().__init__()
        self.nh, self.p, self.sdpa = nh, p, sdpa
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.ad1 = Adapter(d, m)
        self.ln1 = nn.LayerNorm(d, eps=1e-12)
        self.f1 = nn.Linear(d, ff)
        self.f2 = nn.Linear(ff, d)
        self.ad2 = Adapter(d, m)
        self.ln2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, bias):
        B, T, C = x.shape
        hs = C // self.nh
        q, k, v = self.qkv(x).view(B, T, 3, self.nh, hs).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.p if self.training else 0.0)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hs) + bias
            a = F.dropout(s.softmax(-1), self.p, self.training) @ v
        a = a.transpose(1, 2).reshape(B, T, C)
        x = self.ln1(x + self.ad1(F.dropout(self.o(a), self.p, self.training)))
        h = self.f2(F.gelu(self.f1(x)))
        return self.ln2(x + self.ad2(F.dropout(h, self.p, self.training)))


class Model(nn.Module):
    def __init__(self, L, d, nh, ff, m, classes, p, sdpa, vocab=30522, maxpos=512):
        super().__init__()
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(maxpos, d)
        self.typ = nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(Layer(d, nh, ff, m, p, sdpa) for _ in range(L))
        self.pool = nn.Linear(d, d)
        self.head = nn.Linear(d, classes)
        self.p = p

    def forward(self, ids, mask):
        B, T = ids.shape
        pos = torch.arange(T, device=ids.device)
        x = self.word(ids) + self.pos(pos)[None] + self.typ(torch.zeros_like(ids))
        x = F.dropout(self.ln(x), self.p, self.training)
        bias = torch.zeros(B, 1, 1, T, device=ids.device, dtype=x.dtype)
        bias = bias.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        for layer in self.layers:
            x = layer(x, bias)
        return self.head(torch.tanh(self.pool(x[:, 0])))


def trainable(name):
    """Houlsby strategy: adapters, every LayerNorm and the head train; the
    embeddings, attention, FFN and pooler are frozen."""
    return ".ad1." in name or ".ad2." in name or ".ln" in name or name.startswith("ln.") or name.startswith("head.")


def run(args, shape, device):
    L, d, nh, ff = SHAPES[shape]
    torch.manual_seed(0)
    model = Model(L, d, nh, ff, args.m, 2, args.dropout, args.sdpa).to(device)
    params = []
    for name, p in model.named_parameters():
        if trainable(name):
            params.append(p)  # fp32 master weights
        else:
            p.requires_grad_(False)
            if device.type == "cuda":
                p.data = p.data.to(torch.bfloat16)  # frozen weights stored in bf16
    n_train = sum(p.numel() for p in params)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=fused)
    B, T = args.batch, args.seq
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, 30522, (B, T), generator=g).to(device)
    mask = torch.ones(B, T, dtype=torch.int32)
    mask[: B // 2, T * 3 // 4 :] = 0  # some padding, as real batches have
    mask = mask.to(device)
    labels = torch.randint(0, 2, (B,), generator=g).to(device)
    model.train()
    fwd = model
    t_compile = None
    if args.compile:
        # torch.compile's default mode (inductor, no CUDA graphs); the first
        # calls (the warmup) compile forward and backward, and their time is
        # reported apart from the timed steps.
        fwd = torch.compile(model)
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with amp:
            loss = F.cross_entropy(fwd(ids, mask).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    t_warm = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    if args.compile:
        t_compile = round(time.perf_counter() - t_warm, 2)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()  # before the clock stops
    dt = (time.perf_counter() - t0) / args.steps
    out = {
        "shape": shape,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "batch": B,
        "seq": T,
        "adapter_m": args.m,
        "attention": "sdpa" if args.sdpa else "eager",
        "mode": "compile" if args.compile else "eager",
        "warmup_s_with_compile": t_compile,
        "trainable_params": n_train,
        "ms_per_step": round(dt * 1e3, 3),
        "sequences_per_s": round(B / dt, 1),
        "tokens_per_s": round(B * T / dt, 1),
        "final_loss": float(loss.detach()),
    }
    if device.type == "cuda":
        out["max_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(out), flush=True)
    if not math.isfinite(out["final_loss"]):
        raise SystemExit("loss is not finite")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable; default bert-base and bert-large")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--m", type=int, default=64, help="adapter bottleneck size")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--sdpa", action="store_true", help="fused F.scaled_dot_product_attention instead of eager")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (default inductor mode)")
    ap.add_argument("--smoke", action="store_true", help="tiny shape on the CPU, to check the script runs")
    args = ap.parse_args()
    if args.smoke:
        args.batch, args.seq, args.steps, args.warmup = 4, 16, 2, 1
        run(args, "smoke", torch.device("cpu"))
        return
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch (use --smoke to test the script on the CPU)")
    for shape in args.shape or ["bert-base", "bert-large"]:
        run(args, shape, torch.device("cuda"))


if __name__ == "__main__":
    main()
