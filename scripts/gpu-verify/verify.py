#!/usr/bin/env python3
"""The Python half of gpu-verify.sh: parses what each part printed and
writes the one results file (schema houlsby-gpu-verify/1; the Go test
scripts/gpuverify checks it). Standard library only.

  verify.py curve LOG.jsonl                    # a run's loss curve as JSON
  verify.py compare CPU_CURVE LOG.jsonl KIND   # KIND: exact, f32, bf16; exit 1 on failure
  verify.py report WORK OUT MODE               # WORK: gpu-verify.sh's work folder
  verify.py selftest                           # the parsers on sample outputs

Every part of gpu-verify.sh leaves WORK/<part>.log (its output) and a line
in WORK/parts.tsv (name, exit status, seconds, time limit); report turns
them into one JSON object with a status per part:

  pass       ran and met its criterion
  fail       ran and did not (or a test failed)
  timeout    hit its time limit (the log up to then is kept)
  skipped    not run (--only, no time left in the budget, a missing tool)
  rehearsed  a GPU part run on a machine without a GPU, as in
             `gpu-verify.sh --rehearse`: its harness ran to the expected
             no-GPU outcome (the CUDA build stops at cuInit)
"""
import json
import os
import re
import sys

SCHEMA = "houlsby-gpu-verify/1"

# The parts, in gpu-verify.sh's order: name -> (title, needs a GPU).
PARTS = [
    ("environment", "machine, driver, toolkit, bundle", False),
    ("dispatch", "train-gpu probe: the CPU build hands off to the CUDA build", True),
    ("driver", "cuda.test: context, memory, copies, a kernel, launch errors, timer; launch cost", True),
    ("conformance_f32", "backend conformance suite on the GPU, F32 storage", True),
    ("conformance_bf16", "backend conformance suite on the GPU, BF16 storage", True),
    ("model_step", "one training step of the MiniLM slice, GPU against CPU (F32 and BF16)", True),
    ("train200_f32", "200 training steps on the GPU (F32) against the shipped CPU loss curve", True),
    ("train200_bf16", "200 training steps on the GPU (BF16) against the shipped CPU loss curve", True),
    ("train200_graphs", "the F32 run again with CUDA Graphs: must equal the F32 run bit for bit", True),
    ("kernels", "kernel benchmarks against cuBLAS and the card's roofline", True),
    ("bert_base_ours", "BERT-base adapter training step: train-gpu bench on the GPU", True),
    ("bert_base_torch_eager", "BERT-base adapter training step: PyTorch eager, bf16 autocast", True),
    ("bert_base_torch_compile", "BERT-base adapter training step: PyTorch torch.compile", True),
]
STATUSES = ("pass", "fail", "timeout", "skipped", "rehearsed")

CUINIT = "Error in initialization"


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def tail(text, n):
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- parsers


def parse_gotest(text):
    """Counts of `go test -v` results; names of failures; whether the binary
    stopped at gorgonia.org/cu's cuInit."""
    res = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "cuinit_failed": CUINIT in text}
    for m in re.finditer(r"^\s*--- (PASS|FAIL|SKIP): (\S+)", text, re.M):
        kind, name = m.group(1), m.group(2)
        if kind == "PASS":
            res["passed"] += 1
        elif kind == "FAIL":
            res["failed"] += 1
            res["failures"].append(name)
        else:
            res["skipped"] += 1
    res["failures"] = res["failures"][:50]
    return res


BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op((?:\s+[\d.e+-]+ \S+)*)\s*$")


def parse_bench(text):
    """`go test -bench` lines into {name: {"n", "ns_per_op", metrics...}},
    and the GPU-PEAKS line of gpu/bench_test.go."""
    out, peaks = {}, None
    for line in text.split("\n"):
        if line.startswith("GPU-PEAKS "):
            try:
                peaks = json.loads(line[len("GPU-PEAKS "):])
            except ValueError:
                pass
            continue
        m = BENCH_LINE.match(line.strip())
        if not m:
            continue
        rec = {"n": int(m.group(2)), "ns_per_op": float(m.group(3))}
        for v, unit in re.findall(r"([\d.e+-]+) (\S+)", m.group(4)):
            rec[unit] = float(v)
        out[m.group(1)] = rec
    return out, peaks


def cublas_table(bench):
    """Our GEMM kernels against cuBLAS on the same shapes (GPU time)."""
    rows = []
    for name, rec in sorted(bench.items()):
        if not name.startswith("BenchmarkOp/gpu/") or "/gemm_" not in name:
            continue
        ref = bench.get(name.replace("BenchmarkOp/", "BenchmarkGemmCuBLAS/"))
        if not ref or "gpu-us/op" not in rec or "gpu-us/op" not in ref:
            continue
        rows.append({"op": name[len("BenchmarkOp/gpu/"):], "ours_us": rec["gpu-us/op"], "cublas_us": ref["gpu-us/op"],
                     "ours_over_cublas": round(rec["gpu-us/op"] / ref["gpu-us/op"], 3) if ref["gpu-us/op"] else None,
                     "ours_roofline_pct": rec.get("%roofline"), "cublas_roofline_pct": ref.get("%roofline")})
    return rows


OURS_STEP = re.compile(r"^train step \(trainer\.Learner\.Step\)\s+([\d.]+) ms/step\s+([\d.]+) examples/s\s+([\d.]+) tokens/s", re.M)
OURS_INFER = re.compile(r"^inference \(forward\)\s+([\d.]+) ms/step", re.M)


def parse_ours_bench(text):
    """`train-gpu bench` output: ms per training step and per forward pass,
    for each run (the script runs it without and with CUDA Graphs)."""
    steps = [float(m.group(1)) for m in OURS_STEP.finditer(text)]
    infer = [float(m.group(1)) for m in OURS_INFER.finditer(text)]
    dev = re.findall(r"^bench: .*device (.*)$", text, re.M)
    return {"train_ms": steps, "forward_ms": infer, "devices": dev}


def parse_json_lines(text):
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


# ------------------------------------------------------------ loss curves


def curve(path):
    """The per-step losses and gradient norms of a train-gpu log.jsonl, and
    its last evaluation."""
    steps, loss, gnorm, ev = [], [], [], None
    for rec in parse_json_lines(read(path)):
        if rec.get("event") == "train":
            steps.append(rec["step"])
            loss.append(rec["loss"])
            gnorm.append(rec.get("grad_norm"))
        elif rec.get("event") == "eval":
            ev = {k: rec.get(k) for k in ("step", "loss", "accuracy", "f1")}
    return {"steps": steps, "loss": loss, "grad_norm": gnorm, "eval": ev}


# Criteria, per KIND, of a GPU loss curve against the CPU's:
#   exact  the same numbers (the CPU build is deterministic; graphs replay
#          the same kernels);
#   f32    |Δ| <= 0.01 + 0.01·|cpu| at every step: fp32 in another
#          summation order, through 200 AdamW steps;
#   bf16   mean |Δ| over the steps <= 0.03 and the last 50 steps' mean loss
#          within 0.05 of the CPU's: bf16 activations round to 8 bits, so
#          single steps may differ more, the curve may not.
def compare(cpu, gpu, kind):
    n = min(len(cpu["loss"]), len(gpu["loss"]))
    res = {"kind": kind, "cpu_steps": len(cpu["loss"]), "gpu_steps": len(gpu["loss"]), "compared": n}
    if n == 0 or cpu["steps"][:n] != gpu["steps"][:n] or len(cpu["loss"]) != len(gpu["loss"]):
        res.update(ok=False, why="the runs logged different steps")
        return res
    d = [abs(g - c) for g, c in zip(gpu["loss"][:n], cpu["loss"][:n])]
    worst = max(range(n), key=lambda i: d[i])
    last = min(50, n)
    res.update(max_abs=max(d), worst_step=cpu["steps"][worst], mean_abs=sum(d) / n,
               max_rel=max(di / max(abs(c), 1e-12) for di, c in zip(d, cpu["loss"])),
               cpu_last_mean=sum(cpu["loss"][-last:]) / last, gpu_last_mean=sum(gpu["loss"][-last:]) / last,
               cpu_eval=cpu.get("eval"), gpu_eval=gpu.get("eval"))
    if kind == "exact":
        res["ok"] = all(x == 0 for x in d)
        res["criterion"] = "every step's loss identical"
    elif kind == "f32":
        res["ok"] = all(di <= 0.01 + 0.01 * abs(c) for di, c in zip(d, cpu["loss"]))
        res["criterion"] = "|gpu - cpu| <= 0.01 + 0.01*|cpu| at every step"
    else:
        res["ok"] = res["mean_abs"] <= 0.03 and abs(res["gpu_last_mean"] - res["cpu_last_mean"]) <= 0.05
        res["criterion"] = "mean |gpu - cpu| <= 0.03 and last-50-step means within 0.05"
    return res


# ----------------------------------------------------------------- report


def evaluate(name, rc, log, work, mode):
    """status, summary, details of one part from its exit status and log."""
    pdir = os.path.join(work, name)
    if rc in (124, 137):
        return "timeout", "hit its time limit", {}
    gpu_part = dict((p[0], p[2]) for p in PARTS)[name]
    if mode == "rehearsal" and gpu_part and name not in ("bert_base_ours", "bert_base_torch_eager", "train200_f32"):
        return rehearsed(name, rc, log)
    if name == "environment":
        return ("pass" if rc == 0 else "fail"), "recorded", {"sections": sections(log)}
    if name == "dispatch":
        js = [j for j in parse_json_lines(log) if "usable" in j]
        if not js:
            return "fail", "train-gpu probe printed no answer", {}
        a = js[-1]
        if a.get("usable"):
            i = a.get("info") or {}
            return "pass", f"{i.get('description')} through {a.get('cuda_build')}, driver CUDA {i.get('driver_version')}", a
        return "fail", f"no usable GPU: {a.get('reason')} (stage {a.get('stage')})", a
    if name in ("driver", "conformance_f32", "conformance_bf16", "model_step"):
        t = parse_gotest(log)
        if name == "driver":
            b, _ = parse_bench(log)
            t["benchmarks"] = b
        ok = rc == 0 and t["failed"] == 0 and t["passed"] > 0 and not t["cuinit_failed"]
        return ("pass" if ok else "fail"), f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped", t
    if name.startswith("train200_"):
        c = read(os.path.join(pdir, "compare.json"))
        if not c:
            return "fail", "no comparison (the run did not finish)", {"train": tail(log, 5)}
        res = json.loads(c)
        s = (f"{res.get('compared')} steps, max |Δloss| {res.get('max_abs', float('nan')):.3g} at step {res.get('worst_step')}, "
             f"mean {res.get('mean_abs', float('nan')):.3g} ({res.get('criterion')})")
        if mode == "rehearsal":
            s = "CPU rerun of the first 20 steps: " + s
        return ("pass" if res.get("ok") and rc == 0 else "fail"), s, res
    if name == "kernels":
        b, peaks = parse_bench(log)
        rows = cublas_table(b)
        ok = rc == 0 and len(b) > 0
        s = f"{len(b)} benchmarks; GEMMs against cuBLAS: " + (
            ", ".join(f"{r['op']} {r['ours_over_cublas']}x" for r in rows[:4]) if rows else "none")
        return ("pass" if ok else "fail"), s, {"peaks": peaks, "cublas": rows, "benchmarks": b}
    if name == "bert_base_ours":
        o = parse_ours_bench(log)
        ok = rc == 0 and len(o["train_ms"]) > 0
        s = "train step " + ", ".join(f"{x:.1f} ms" for x in o["train_ms"]) + (" (without, with CUDA Graphs)" if len(o["train_ms"]) > 1 else "")
        if mode == "rehearsal":
            s = "smoke shape on the CPU: " + s
        return ("pass" if ok else "fail"), s, o
    if name.startswith("bert_base_torch"):
        if "no torch" in log:
            return "skipped", "no PyTorch here", {}
        js = [j for j in parse_json_lines(log) if "ms_per_step" in j]
        if not js:
            return "fail", "no result line", {}
        j = js[-1]
        return ("pass" if rc == 0 else "fail"), f"{j['ms_per_step']} ms/step on {j['device']} (torch {j['torch']}, {j.get('mode')})", j
    return "fail", "unknown part", {}


def rehearsed(name, rc, log):
    """A GPU part on a machine without a GPU: the expected outcome is the
    CUDA build stopping at cuInit (or a harness that says it needs a GPU)."""
    if CUINIT in log or "rehearsal:" in log:
        line = next((l for l in log.split("\n") if CUINIT in l or "rehearsal:" in l), "")
        return "rehearsed", line.strip()[:200], {"exit": rc}
    return "fail", "did not reach the expected no-GPU outcome", {"exit": rc}


def sections(log):
    """The '=== name' sections of the environment part."""
    out, cur = {}, None
    for line in log.split("\n"):
        if line.startswith("=== "):
            cur = line[4:].strip()
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return {k: "\n".join(v).strip()[:4000] for k, v in out.items()}


def report(work, out, mode):
    rows = {}
    for line in read(os.path.join(work, "parts.tsv")).split("\n"):
        f = line.split("\t")
        if len(f) >= 5:
            rows[f[0]] = {"rc": int(f[1]), "seconds": float(f[2]), "limit_s": int(f[3]), "note": f[4]}
    meta = json.loads(read(os.path.join(work, "meta.json"), "{}"))
    parts, counts = [], {s: 0 for s in STATUSES}
    device = None
    for name, title, gpu in PARTS:
        r = rows.get(name)
        if r is None or r["note"].startswith("skipped"):
            st, summ, det, r = "skipped", (r or {}).get("note", "not run"), {}, r or {"rc": -1, "seconds": 0, "limit_s": 0}
            log = ""
        else:
            log = read(os.path.join(work, name + ".log"))
            st, summ, det = evaluate(name, r["rc"], log, work, mode)
        if name == "dispatch" and st == "pass":
            device = det.get("info")
        counts[st] += 1
        keep = 12 if st in ("pass", "rehearsed") else 60
        parts.append({"name": name, "title": title, "needs_gpu": gpu, "status": st, "seconds": round(r["seconds"], 2),
                      "limit_s": r["limit_s"], "rc": r["rc"], "summary": summ, "details": det, "log_tail": tail(log, keep)})
    res = {"schema": SCHEMA, "mode": mode, "started": meta.get("started"), "finished": meta.get("finished"),
           "elapsed_s": meta.get("elapsed_s"), "budget_s": meta.get("budget_s"), "bundle": meta.get("bundle", {}),
           "host": meta.get("host", {}), "device": device, "parts": parts, "counts": counts}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print(f"gpu-verify: {mode}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" -> {out}")


# --------------------------------------------------------------- selftest

SAMPLE_GOTEST = """=== RUN   TestConformanceGPUF32
=== RUN   TestConformanceGPUF32/gemm
--- PASS: TestConformanceGPUF32 (1.20s)
    --- PASS: TestConformanceGPUF32/gemm (0.10s)
    --- FAIL: TestConformanceGPUF32/attention (0.10s)
    --- SKIP: TestConformanceGPUF32/big (0.00s)
FAIL
"""
SAMPLE_BENCH = """GPU-PEAKS {"peak_bandwidth_Bps": 4.8e12, "peak_bf16_flops": 9.9e14, "peaks": "memory 4.80 TB/s"}
goos: linux
BenchmarkOp/gpu/bert-base_B32_T128/gemm_qkv-16         	      30	    123456 ns/op	       350.5 GFLOP/s	        12.00 GB/s	        40.00 %roofline	       100.0 gpu-us/op
BenchmarkGemmCuBLAS/gpu/bert-base_B32_T128/gemm_qkv-16 	      30	     61000 ns/op	       700.1 GFLOP/s	        80.00 %roofline	        50.00 gpu-us/op
BenchmarkLaunchOverhead-16    	    1000	      4500 ns/op	         2.100 gpu-us/op
PASS
"""
SAMPLE_OURS = """bench: adapters, B=32 T=128, device cuda:0 NVIDIA H200 (sm_90, 139.8 GiB)
train step (trainer.Learner.Step)          45.1 ms/step     709.5 examples/s      90816 tokens/s
inference (forward)                        15.0 ms/step    2133.3 examples/s     273066 tokens/s
"""


def selftest():
    t = parse_gotest(SAMPLE_GOTEST)
    assert (t["passed"], t["failed"], t["skipped"]) == (2, 1, 1), t
    assert t["failures"] == ["TestConformanceGPUF32/attention"], t
    assert not t["cuinit_failed"]
    assert parse_gotest('Error in initialization, please refer to "x" for details on: NoDevice')["cuinit_failed"]
    b, peaks = parse_bench(SAMPLE_BENCH)
    assert peaks["peak_bandwidth_Bps"] == 4.8e12, peaks
    assert b["BenchmarkOp/gpu/bert-base_B32_T128/gemm_qkv"]["gpu-us/op"] == 100.0, b
    assert b["BenchmarkLaunchOverhead"]["n"] == 1000, b
    rows = cublas_table(b)
    assert rows == [{"op": "bert-base_B32_T128/gemm_qkv", "ours_us": 100.0, "cublas_us": 50.0, "ours_over_cublas": 2.0,
                     "ours_roofline_pct": 40.0, "cublas_roofline_pct": 80.0}], rows
    o = parse_ours_bench(SAMPLE_OURS)
    assert o["train_ms"] == [45.1] and o["forward_ms"] == [15.0], o
    cpu = {"steps": [1, 2, 3], "loss": [0.7, 0.6, 0.5], "eval": None}
    assert compare(cpu, dict(cpu), "exact")["ok"]
    near = {"steps": [1, 2, 3], "loss": [0.701, 0.605, 0.5], "eval": None}
    assert not compare(cpu, near, "exact")["ok"] and compare(cpu, near, "f32")["ok"] and compare(cpu, near, "bf16")["ok"]
    far = {"steps": [1, 2, 3], "loss": [0.9, 0.9, 0.9], "eval": None}
    assert not compare(cpu, far, "f32")["ok"] and not compare(cpu, far, "bf16")["ok"]
    assert not compare(cpu, {"steps": [1, 2], "loss": [0.7, 0.6], "eval": None}, "f32")["ok"]
    print("verify.py selftest: parsers and comparisons as expected")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "curve" and len(args) == 1:
        json.dump(curve(args[0]), sys.stdout)
        print()
    elif cmd == "compare" and len(args) == 3:
        cpu = json.loads(read(args[0]))
        res = compare(cpu, curve(args[1]), args[2])
        print(json.dumps(res))
        sys.exit(0 if res["ok"] else 1)
    elif cmd == "report" and len(args) == 3:
        report(*args)
    elif cmd == "selftest":
        selftest()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
