"""PyTorch and ONNX Runtime sides of `make bench-torch` (scripts/bench_torch.py
drives them; docs/benchmarks.md, section "CPU: ours vs PyTorch (stack and
lean) vs ONNX Runtime").

  worker  times one side on the batches `train-gpu bench --dump-batches`
          wrote, speaking the same JSON Lines as `train-gpu bench --json
          --sync-stdin` (setup, ready, one rep line per go-ahead line on
          stdin, summary), so the driver interleaves the sides' repetitions.
  export  writes the ONNX model that the ort sides load (torch.onnx, then
          optionally onnxruntime.transformers.optimizer's BERT fusions).

Sides:
  stack   what users run: transformers' BertForSequenceClassification (its
          default attention implementation) and, for adapters, AdapterHub's
          `adapters` with DoubleSeqBnConfig (Houlsby: after the attention
          output and after the FFN output, before each residual LayerNorm,
          as tests/ref/gen_encoder.py matches our placement), relu, m from
          --bottleneck.
  lean    the same architecture written for speed: fused QKV nn.Linear,
          F.scaled_dot_product_attention, F.gelu (erf), BERT's dropouts in
          training and nothing else; the same weights.
  ort     ONNX Runtime (forward only) on an exported model, ORT_ENABLE_ALL,
          intra_op_num_threads = --threads, inter_op_num_threads = 1.

Every side computes the logits of the 2-class head (pooler, dropout,
classifier) from ids and attention mask. A training step is: zero the
gradients, forward with dropout, cross-entropy, backward, clip the global
gradient norm at 1, AdamW (lr 1e-5, weight decay 0.01): what
trainer.Learner.Step does. Trainable tensors match `train-gpu bench
--strategy`: adapters = adapters + every LayerNorm + classifier; full =
everything; head = classifier (the checkpoint's pooler stays frozen, as
ours does when the checkpoint has one).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def die(msg):
    print(f"bench_cpu.py: {msg}", file=sys.stderr)
    sys.exit(2)


def emit(**kv):
    print(json.dumps(kv), flush=True)


def load_batches(path, pad_id):
    """The dumped batches as (ids, mask, labels) int64 tensors, each padded to
    its own longest row."""
    import torch

    try:
        with open(path) as f:
            d = json.load(f)
    except OSError as e:
        die(f"batches file: {e} (written by train-gpu bench --dump-batches)")
    out = []
    for b in d["batches"]:
        T = max(len(r) for r in b["ids"])
        ids = torch.full((len(b["ids"]), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(b["ids"]), T), dtype=torch.long)
        for i, r in enumerate(b["ids"]):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        out.append((ids, mask, torch.tensor(b["labels"], dtype=torch.long)))
    return d, out


def read_config(model_dir):
    p = os.path.join(model_dir, "config.json")
    try:
        with open(p) as f:
            return json.load(f)
    except OSError as e:
        die(f"model folder: {e}")


def trainable_rule(strategy):
    """Which parameter names train (the names of both torch sides)."""
    if strategy == "full":
        return lambda n: True
    if strategy == "head":
        return lambda n: n.startswith("classifier.")
    if strategy == "adapters":
        return lambda n: "adapter" in n or "LayerNorm" in n or n.startswith("classifier.")
    die(f"--strategy {strategy!r}: want adapters, full or head")


# ---------------------------------------------------------------- stack side


def stack_model(a, cfg):
    import transformers
    from transformers import BertForSequenceClassification

    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is expected
    m = BertForSequenceClassification.from_pretrained(a.model, num_labels=2)
    info = {"attn_implementation": m.config._attn_implementation, "transformers": transformers.__version__}
    if a.mode == "train" and a.strategy == "adapters":
        import adapters
        from adapters import DoubleSeqBnConfig

        adapters.init(m)
        m.add_adapter("h", config=DoubleSeqBnConfig(reduction_factor=cfg["hidden_size"] / a.bottleneck, non_linearity="relu"))
        m.train_adapter("h")
        if "h" not in str(m.active_adapters):
            die(f"AdapterHub adapter not active: {m.active_adapters}")
        info["adapters"] = adapters.__version__
    return m, info


def stack_call(m):
    return lambda ids, mask: m(input_ids=ids, attention_mask=mask).logits


# ----------------------------------------------------------------- lean side


def lean_model(a, cfg):
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from torch import nn

    d, H, L, f = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    p_hid, p_att, eps = cfg.get("hidden_dropout_prob", 0.1), cfg.get("attention_probs_dropout_prob", 0.1), cfg.get("layer_norm_eps", 1e-12)
    with_adapters = a.mode == "train" and a.strategy == "adapters"

    class Adapter(nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.up = nn.Linear(d, a.bottleneck), nn.Linear(a.bottleneck, d)
            nn.init.zeros_(self.up.weight)  # identity at start, as ours
            nn.init.zeros_(self.up.bias)

        def forward(self, h):
            return h + self.up(F.relu(self.down(h)))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.attn_LayerNorm, self.out_LayerNorm = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
            self.ffn1, self.ffn2 = nn.Linear(d, f), nn.Linear(f, d)
            self.adapter1 = Adapter() if with_adapters else None
            self.adapter2 = Adapter() if with_adapters else None

        def forward(self, x, amask):
            B, T, _ = x.shape
            q, k, v = self.qkv(x).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=amask, dropout_p=p_att if self.training else 0.0)
            h = F.dropout(self.o(ctx.transpose(1, 2).reshape(B, T, d)), p_hid, self.training)
            if self.adapter1 is not None:
                h = self.adapter1(h)
            x = self.attn_LayerNorm(h + x)
            h = F.dropout(self.ffn2(F.gelu(self.ffn1(x))), p_hid, self.training)
            if self.adapter2 is not None:
                h = self.adapter2(h)
            return self.out_LayerNorm(h + x)

    class Lean(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(cfg["vocab_size"], d)
            self.pos = nn.Embedding(cfg["max_position_embeddings"], d)
            self.tok_type = nn.Embedding(cfg.get("type_vocab_size", 2), d)
            self.LayerNorm = nn.LayerNorm(d, eps=eps)
            self.layers = nn.ModuleList(Layer() for _ in range(L))
            self.pooler = nn.Linear(d, d)
            self.classifier = nn.Linear(d, 2)

        def forward(self, ids, mask):
            T = ids.shape[1]
            x = self.word(ids) + self.pos.weight[:T] + self.tok_type.weight[0]
            x = F.dropout(self.LayerNorm(x), p_hid, self.training)
            amask = mask.bool()[:, None, None, :]  # True = attend
            for layer in self.layers:
                x = layer(x, amask)
            pooled = torch.tanh(self.pooler(x[:, 0]))
            return self.classifier(F.dropout(pooled, p_hid, self.training))

    m = Lean()
    load_lean_weights(m, load_file(os.path.join(a.model, "model.safetensors")), L)
    return m, {"attention": "F.scaled_dot_product_attention"}


def load_lean_weights(m, sd, L):
    """Copies the Hugging Face BERT tensors into the lean model (Q, K and V
    concatenated into one weight); the classifier keeps its random init."""
    import torch

    sd = {k.removeprefix("bert."): v for k, v in sd.items()}
    g = lambda k: sd[k]  # noqa: E731
    names = {"word.weight": "embeddings.word_embeddings.weight", "pos.weight": "embeddings.position_embeddings.weight",
             "tok_type.weight": "embeddings.token_type_embeddings.weight", "LayerNorm.weight": "embeddings.LayerNorm.weight",
             "LayerNorm.bias": "embeddings.LayerNorm.bias", "pooler.weight": "pooler.dense.weight", "pooler.bias": "pooler.dense.bias"}
    for i in range(L):
        p = f"encoder.layer.{i}."
        for ours, hf in (("o", "attention.output.dense"), ("attn_LayerNorm", "attention.output.LayerNorm"), ("ffn1", "intermediate.dense"),
                         ("ffn2", "output.dense"), ("out_LayerNorm", "output.LayerNorm")):
            for t in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{t}"] = p + hf + "." + t
    state = {}
    try:
        for ours, hf in names.items():
            state[ours] = g(hf)
        for i in range(L):
            p = f"encoder.layer.{i}.attention.self."
            for t in ("weight", "bias"):
                state[f"layers.{i}.qkv.{t}"] = torch.cat([g(p + n + "." + t) for n in ("query", "key", "value")])
    except KeyError as e:
        die(f"model.safetensors has no tensor {e}")
    missing, _ = m.load_state_dict(state, strict=False)
    left = [k for k in missing if not (k.startswith("classifier.") or ".adapter" in k)]
    if left:
        die(f"lean model: tensors not loaded: {left}")


# ------------------------------------------------------------------ ort side


def ort_session(a):
    import onnxruntime as ort

    if not os.path.exists(a.onnx):
        die(f"--onnx {a.onnx}: no such file (bench_cpu.py export writes it)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    ops = {}
    import onnx

    for n in onnx.load(a.onnx, load_external_data=False).graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return s, {"onnxruntime": ort.__version__, "onnx": a.onnx, "graph_ops": ops}


def export(a):
    """Exports the 2-class BertForSequenceClassification (eval mode, eager
    attention, which the ORT fusions recognise) with dynamic batch and
    sequence axes; --optimize also runs ORT's BERT fusions (Attention,
    SkipLayerNormalization, BiasGelu, EmbedLayerNormalization)."""
    import torch
    import transformers
    from transformers import BertForSequenceClassification

    import warnings

    # The TorchScript exporter is the one whose graph ORT's BERT fusions
    # recognise; its deprecation notice is expected.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    cfg = read_config(a.model)
    m = BertForSequenceClassification.from_pretrained(a.model, num_labels=2, attn_implementation="eager").eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    raw = a.out + ".raw.onnx" if a.optimize else a.out
    torch.onnx.export(m, (ids, torch.ones_like(ids)), raw, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
                      opset_version=17, dynamo=False)
    if a.optimize:
        from onnxruntime.transformers import optimizer

        opt = optimizer.optimize_model(raw, model_type="bert", num_heads=cfg["num_attention_heads"], hidden_size=cfg["hidden_size"],
                                       opt_level=0)
        opt.save_model_to_file(a.out)
        print(json.dumps({"fused": opt.get_fused_operator_statistics()}))
        os.remove(raw)


# ------------------------------------------------------------------- worker


def worker(a):
    try:
        import torch
    except ImportError as e:
        die(f"{e}: run with the reference venv (make ref-env)")
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    cfg = read_config(a.model)
    dump, batches = load_batches(a.batches, cfg.get("pad_token_id", 0))
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if a.side == "ort":
        if a.mode != "forward":
            die("the ort side times inference only (--mode forward)")
        s, extra = ort_session(a)
        feeds = [{"input_ids": ids.numpy(), "attention_mask": mask.numpy()} for ids, mask, _ in batches]
        run_one = lambda i: s.run(None, feeds[i])  # noqa: E731
        trainable = 0
    else:
        m, extra = (stack_model if a.side == "stack" else lean_model)(a, cfg)
        run_one, trainable = torch_step(a, m, batches)
    info.update(extra)
    real = sum(int(mask.sum()) for _, mask, _ in batches)
    emit(event="setup", side=a.side, mode=a.mode, strategy=a.strategy, model=a.model, batches=len(batches),
         tokens=sum(ids.numel() for ids, _, _ in batches), real_tokens=real, dumped_real_tokens=dump["real_tokens"],
         trainable_params=trainable, **info)
    timed(a, run_one, len(batches), real)


def torch_step(a, m, batches):
    """The function running batch i (a training step or a forward pass) and
    the number of trainable parameters."""
    import torch
    import torch.nn.functional as F

    if a.mode == "forward":
        m.eval()

        def fwd(i):
            with torch.inference_mode():
                ids, mask, _ = batches[i]
                return m(ids, mask) if a.side == "lean" else m(input_ids=ids, attention_mask=mask).logits

        return fwd, 0
    rule = trainable_rule(a.strategy)
    params = []
    for n, p in m.named_parameters():
        p.requires_grad_(rule(n))
        if p.requires_grad:
            params.append(p)
    m.train()
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)

    def step(i):
        ids, mask, labels = batches[i]
        opt.zero_grad(set_to_none=True)
        logits = m(ids, mask) if a.side == "lean" else m(input_ids=ids, attention_mask=mask).logits
        F.cross_entropy(logits, labels).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step, sum(p.numel() for p in params)


def timed(a, run_one, n, real):
    warm = n if a.warmup < 0 else a.warmup
    for i in range(warm):
        run_one(i % n)
    emit(event="ready", mode=a.mode)
    walls = []
    for rep in range(a.reps):
        if a.sync_stdin and not sys.stdin.readline():
            die(f"--sync-stdin: stdin closed before repetition {rep + 1}")
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            run_one(i)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls.append(wall)
        emit(event="rep", mode=a.mode, rep=rep, wall_s=wall, cpu_s=cpu, steps=n, real_tokens=real)
    med = statistics.median(walls)
    emit(event="summary", mode=a.mode, reps=len(walls), median_s=med, min_s=min(walls), max_s=max(walls),
         real_tokens_per_s=real / med, maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="time one side")
    w.add_argument("--side", required=True, choices=["stack", "lean", "ort"])
    w.add_argument("--model", required=True, help="Hugging Face BERT folder")
    w.add_argument("--batches", required=True, help="JSON from train-gpu bench --dump-batches")
    w.add_argument("--mode", required=True, choices=["train", "forward"])
    w.add_argument("--strategy", default="adapters")
    w.add_argument("--bottleneck", type=int, default=64)
    w.add_argument("--onnx", help="the ONNX model of the ort side")
    w.add_argument("--threads", type=int, default=2)
    w.add_argument("--reps", type=int, default=1)
    w.add_argument("--warmup", type=int, default=-1, help="untimed steps first (-1: one pass over the batches)")
    w.add_argument("--sync-stdin", action="store_true", help="wait for a line on stdin before each repetition")
    e = sub.add_parser("export", help="write the ONNX model of the ort side")
    e.add_argument("--model", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--optimize", action="store_true", help="also run onnxruntime.transformers.optimizer (BERT fusions)")
    a = ap.parse_args()
    if a.cmd == "export":
        export(a)
    else:
        worker(a)


if __name__ == "__main__":
    main()
