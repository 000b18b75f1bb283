"""The Python baseline of the serving benchmark (docs/benchmarks.md).

Serves the adapter files of a folder (NAME.safetensors -> task NAME, as
`train-gpu serve` does) with Hugging Face transformers and AdapterHub's
`adapters` library on PyTorch (CPU), behind the same JSON API
(POST /v1/predict, GET /v1/tasks), so that `train-gpu loadgen` drives both
servers alike. Python is here for comparison only.

How it serves several tasks at once, the best way the libraries offer:
one `BertAdapterModel` with every task's bottleneck adapter (a
`DoubleSeqBnConfig` with the file's size and nonlinearity: AdapterHub's
Houlsby placement, the one tests/encoder_parity_test.go checks against our
model) and its classification head (`use_pooler=True`, one linear layer: our
"pooler" head). A batch's rows are grouped by task and run in ONE forward
pass with the `BatchSplit(*tasks, batch_sizes=...)` composition
(adapters/composition.py; compose_batch_split in
adapters/methods/adapter_layer_base.py feeds each task's slice of the batch
through that task's adapter at every adapter site, and forward_head in
adapters/heads/model_mixin.py runs each task's head on its slice). The
library's other multi-task block, `MultiTask(task_ids=...)`, sorts the rows
by task and calls compose_batch_split itself, but only for adapters (the
heads do not support it), so BatchSplit after sorting is the complete
form. AdapterHub has no per-task LayerNorm of the base model, so the
benchmark's tasks are adapters without LayerNorm training.

Batching is the Go server's policy (serve/queue.go): rows wait up to
--max-wait for company, at most --max-batch-rows rows and
--max-batch-tokens padded tokens per pass, the oldest row and the rows
nearest to it in length; tokenization (the fast Rust tokenizer) happens when
a request arrives. Inference runs under torch.inference_mode() with
--threads intra-op threads (2 in the benchmark, as GOMAXPROCS=2).

  .venv-ref/bin/python tests/ref/serve_adapterhub.py --model DIR --adapters DIR --port 8090

--check TEXT... prints every task's probabilities for the texts and exits
(the benchmark compares them with the Go server's); --bench-forward times
bare forward passes (no server), the counterpart of Go's BenchmarkMulti.
"""

import argparse
import json
import math
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from safetensors import safe_open


def load_tasks(model, adapters_dir, hidden):
    """Adds every NAME.safetensors of adapters_dir as adapter and head NAME."""
    import adapters as ah

    tasks = {}
    for fn in sorted(os.listdir(adapters_dir)):
        if fn.startswith(".") or not fn.endswith(".safetensors"):
            continue
        name = fn[: -len(".safetensors")]
        with safe_open(os.path.join(adapters_dir, fn), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        strategy = json.loads(meta["strategy"])
        cfg = json.loads(meta["adapter_config"])
        head = json.loads(meta["head"])
        labels = json.loads(meta["label_map"])
        if strategy["name"] != "adapters" or strategy.get("train_layernorm"):
            raise SystemExit(f"{fn}: AdapterHub serves adapters without LayerNorm training only (got {strategy})")
        if head["kind"] != "pooler" or len(labels) < 2:
            raise SystemExit(f"{fn}: the baseline serves classification heads on the pooler only")
        m = cfg.get("bottleneck") or hidden // cfg["reduction_factor"]
        config = ah.DoubleSeqBnConfig(
            reduction_factor=hidden / m,
            non_linearity={"relu": "relu", "gelu": "gelu", "swish": "swish"}[cfg.get("non_linearity") or "relu"],
            original_ln_before=False,
            original_ln_after=True,
            residual_before_ln=True,
            scaling=1.0,
        )
        model.add_adapter(name, config=config)
        model.add_classification_head(name, num_labels=len(labels), layers=1, use_pooler=True,
                                      id2label=dict(enumerate(labels)))
        state = {}
        for key, t in tensors.items():
            if key.startswith("classifier."):
                state[f"heads.{name}.1.{key.split('.')[-1]}"] = t
                continue
            prefix, part = key.split(".adapter.")
            part = {"down.weight": "adapter_down.0.weight", "down.bias": "adapter_down.0.bias",
                    "up.weight": "adapter_up.weight", "up.bias": "adapter_up.bias"}[part]
            state[f"bert.{prefix}.adapters.{name}.{part}"] = t
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise SystemExit(f"{fn}: names AdapterHub does not know: {unexpected[:3]}")
        mine = [k for k in missing if f".{name}." in k]
        if mine:
            raise SystemExit(f"{fn}: tensors left unset: {mine[:3]}")
        tasks[name] = labels
    return tasks


class Row:
    __slots__ = ("req", "idx", "ids", "arrived")

    def __init__(self, req, idx, ids):
        self.req, self.idx, self.ids, self.arrived = req, idx, ids, time.monotonic()


class Request:
    def __init__(self, task, n):
        self.task, self.left, self.preds = task, n, [None] * n
        self.done = threading.Event()
        self.error = None


class Batcher:
    """The Go server's batching policy, over one model with BatchSplit."""

    def __init__(self, model, tok, tasks, args):
        self.model, self.tok, self.tasks, self.a = model, tok, tasks, args
        self.pending, self.cv = [], threading.Condition()
        threading.Thread(target=self.loop, daemon=True).start()

    def push(self, rows):
        with self.cv:
            if len(self.pending) + len(rows) > self.a.max_queue:
                return False
            self.pending.extend(rows)
            self.cv.notify()
        return True

    def take(self):
        with self.cv:
            while True:
                while not self.pending:
                    self.cv.wait()
                oldest = self.pending[0]
                longest = max(len(r.ids) for r in self.pending)
                n = len(self.pending)
                wait = self.a.max_wait - (time.monotonic() - oldest.arrived)
                if n >= self.a.max_batch_rows or n * longest >= self.a.max_batch_tokens or wait <= 0:
                    break
                self.cv.wait(wait)
            cand = sorted(range(len(self.pending)), key=lambda i: len(self.pending[i].ids))
            at = cand.index(0)
            lo = hi = at
            T = len(self.pending[cand[at]].ids)
            ln = lambda k: len(self.pending[cand[k]].ids)
            while hi - lo + 1 < self.a.max_batch_rows:
                k = hi - lo + 1
                cl = T - ln(lo - 1) if lo > 0 and (k + 1) * T <= self.a.max_batch_tokens else -1
                cr = (ln(hi + 1) - T) * k if hi + 1 < len(cand) and (k + 1) * ln(hi + 1) <= self.a.max_batch_tokens else -1
                if cl < 0 and cr < 0:
                    break
                if cr < 0 or (cl >= 0 and cl <= cr):
                    lo -= 1
                else:
                    hi += 1
                    T = ln(hi)
            chosen = set(cand[lo : hi + 1])
            rows = [r for i, r in enumerate(self.pending) if i in chosen]
            self.pending = [r for i, r in enumerate(self.pending) if i not in chosen]
            return rows

    def loop(self):
        names = list(self.tasks)
        while True:
            rows = self.take()
            rows.sort(key=lambda r: names.index(r.req.task))
            try:
                self.run(rows)
            except Exception as e:  # answer every waiting request
                for r in rows:
                    r.req.error = str(e)
            for r in rows:
                r.req.left -= 1
                if r.req.left == 0:
                    r.req.done.set()

    def run(self, rows):
        import adapters as ah

        T = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), T), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r.ids)] = torch.tensor(r.ids)
            mask[i, : len(r.ids)] = 1
        order, sizes = [], []
        for r in rows:
            if not order or order[-1] != r.req.task:
                order.append(r.req.task)
                sizes.append(0)
            sizes[-1] += 1
        self.model.active_adapters = ah.BatchSplit(*order, batch_sizes=sizes)
        self.model.active_head = ah.BatchSplit(*order, batch_sizes=sizes)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask)
        logits = [o.logits for o in out.head_outputs] if hasattr(out, "head_outputs") else [out.logits]
        logits = torch.cat(logits)
        probs = torch.softmax(logits.double(), dim=-1)
        for i, r in enumerate(rows):
            labels = self.tasks[r.req.task]
            p = probs[i].tolist()
            best = max(range(len(p)), key=lambda k: logits[i, k].item())
            r.req.preds[r.idx] = {"label": labels[best], "score": p[best],
                                  "probabilities": {l: p[k] for k, l in enumerate(labels)}}


def serve(args):
    model, tok, tasks = setup(args)
    batcher = Batcher(model, tok, tasks, args)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):
            if self.path == "/v1/tasks":
                return self.reply(200, {"tasks": [{"name": n, "labels": l} for n, l in tasks.items()]})
            self.reply(404, {"error": {"status": 404, "message": "no such endpoint"}})

        def do_POST(self):
            if self.path != "/v1/predict":
                return self.reply(404, {"error": {"status": 404, "message": "no such endpoint"}})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                task, inputs = body["task"], body["inputs"]
                assert task in tasks and isinstance(inputs, list) and inputs
            except Exception as e:
                return self.reply(400, {"error": {"status": 400, "message": str(e)}})
            enc = tok([x if isinstance(x, str) else x[0] for x in inputs],
                      [x[1] for x in inputs] if not isinstance(inputs[0], str) else None,
                      truncation=True, max_length=args.max_length)["input_ids"]
            req = Request(task, len(inputs))
            if not batcher.push([Row(req, i, ids) for i, ids in enumerate(enc)]):
                return self.reply(429, {"error": {"status": 429, "message": "queue full"}})
            req.done.wait()
            if req.error:
                return self.reply(500, {"error": {"status": 500, "message": req.error}})
            self.reply(200, {"task": task, "predictions": req.preds})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # listen backlog (socketserver's default, 5, resets concurrent clients)

    srv = Server(("127.0.0.1", args.port), Handler)
    print(f"serving {sorted(tasks)} on 127.0.0.1:{args.port} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)", file=sys.stderr, flush=True)
    srv.serve_forever()


def setup(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    from adapters import BertAdapterModel
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(args.model)
    model = BertAdapterModel.from_pretrained(args.model)
    model.eval()
    tasks = load_tasks(model, args.adapters, model.config.hidden_size)
    return model, tok, tasks


def check(args):
    """Prints each task's probabilities for args.check, one JSON line per task."""
    model, tok, tasks = setup(args)
    args.max_queue, args.max_batch_rows, args.max_batch_tokens, args.max_wait = 1 << 20, 1 << 20, 1 << 30, 0
    b = Batcher.__new__(Batcher)
    b.model, b.tok, b.tasks, b.a = model, tok, tasks, args
    for name in tasks:
        enc = tok(args.check, truncation=True, max_length=args.max_length)["input_ids"]
        req = Request(name, len(enc))
        b.run([Row(req, i, ids) for i, ids in enumerate(enc)])
        print(json.dumps({"task": name, "predictions": req.preds}))


def bench_forward(args):
    """Times one forward pass of 32 sequences x 128 tokens (the ids of
    model/encoder_bench_test.go) through BatchSplit over four tasks (8
    sequences each) and over one task, as BenchmarkMulti does in Go: wall and
    process CPU seconds per pass, medians of --reps."""
    import statistics

    import adapters as ah

    model, _, tasks = setup(args)
    names = list(tasks)
    ids = torch.tensor([[1000 + (i * 7919) % 20000 for i in range(b * 128, (b + 1) * 128)] for b in range(32)])
    mask = torch.ones_like(ids)

    def step(k):
        sizes = [32 // k] * k
        model.active_adapters = ah.BatchSplit(*names[:k], batch_sizes=sizes)
        model.active_head = ah.BatchSplit(*names[:k], batch_sizes=sizes)
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)

    for k in (4, 1):
        step(k)
        wall, cpu = [], []
        for _ in range(args.reps):
            c0, w0 = time.process_time(), time.perf_counter()
            step(k)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        print(f"BatchSplit tasks={k} B32xT128: wall s {' '.join(f'{w:.3f}' for w in wall)} median {statistics.median(wall):.3f}; "
              f"CPU s {' '.join(f'{c:.3f}' for c in cpu)} median {statistics.median(cpu):.3f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--adapters", required=True)
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-batch-rows", type=int, default=32)
    p.add_argument("--max-batch-tokens", type=int, default=4096)
    p.add_argument("--max-wait", type=float, default=0.002, help="seconds")
    p.add_argument("--max-queue", type=int, default=2048)
    p.add_argument("--check", nargs="*")
    p.add_argument("--bench-forward", action="store_true", help="time forward passes (see bench_forward) and exit")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    if args.check:
        return check(args)
    if args.bench_forward:
        return bench_forward(args)
    serve(args)


if __name__ == "__main__":
    main()
