#!/usr/bin/env python3
"""make bench-torch: our CPU backend against PyTorch (the transformers +
AdapterHub stack, and a lean model) and ONNX Runtime, in one run.

Standard library only: it starts the sides as separate processes (ours:
build/train-gpu bench; the others: tests/ref/bench_cpu.py in the reference
venv) and speaks to them in JSON Lines. For each group (model x workload x
task) it starts every side and lets it load and warm up (one pass over the
workload's batches, not timed), then releases one repetition at a time,
side after side, the order rotating each repetition, so bursts of load from
other processes hit every side alike. Each side's peak resident memory is
that process's ru_maxrss (os.wait4). All sides run with 2 threads
(GOMAXPROCS, torch.set_num_threads, ORT intra-op threads; 1 inter-op).

Writes build/bench/torch/results.json (every raw timing) and results.md
(the tables docs/benchmarks.md quotes), and prints the tables.

  python3 scripts/bench_torch.py [--quick] [--reps N] [--models minilm,bert-base] ...

--quick runs a tiny random BERT on a few real batches, one repetition: a
check that every side and every step of the harness still works.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join("build", "bench", "torch")
MINILM = os.path.join("build", "assets", "all-MiniLM-L6-v2")
SPAM = os.path.join("build", "assets", "spam", "train.jsonl")
TG = os.path.join("build", "train-gpu")
WORKER = os.path.join("tests", "ref", "bench_cpu.py")
THREADS = 2
# Models: folder, and the shape make_bert.py writes when the folder is generated.
MODELS = {
    "minilm": {"dir": MINILM},
    # per_rep scales --steps and --batches: BERT-base costs ~4x MiniLM a token.
    "bert-base": {"dir": os.path.join("build", "bench", "models", "bert-base-random"), "per_rep": 0.5,
                  "make": ["--layers", "12", "--hidden", "768", "--heads", "12", "--ffn", "3072"]},
    "tiny": {"dir": os.path.join("build", "bench", "models", "tiny"), "make": ["--layers", "2", "--hidden", "128", "--heads", "2", "--ffn", "512"]},
}
TASKS = {
    "forward": {"mode": "forward", "strategy": "head", "sides": ["ours", "stack", "lean", "ort", "ort-fused"]},
    "train-adapters": {"mode": "train", "strategy": "adapters", "sides": ["ours", "stack", "lean"]},
    "train-full": {"mode": "train", "strategy": "full", "sides": ["ours", "stack", "lean"]},
    "train-head": {"mode": "train", "strategy": "head", "sides": ["ours", "stack", "lean"]},
}
# The issue's targets: ours' speed over the side's (side time / our time),
# and for memory our peak RSS over the side's.
TARGETS = {("forward", "stack"): 1.5, ("forward", "lean"): 1.1, ("forward", "ort"): 1.0,
           ("train-adapters", "stack"): 1.8, ("train-adapters", "lean"): 1.3, ("train-full", "stack"): 1.3}
RSS_TARGET = 0.4  # train-adapters: ours <= 0.4 x PyTorch's peak RSS


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench-torch: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs cmd, returning its stdout; a failure raises BenchError with the
    command and the end of its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {p.returncode}:\n{(p.stdout + p.stderr)[-3000:]}")
    return p.stdout


def env():
    e = dict(os.environ)
    e.update(GOMAXPROCS=str(THREADS), OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore::DeprecationWarning",
             HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # every model loads from its local folder
    return e


# ------------------------------------------------------------ preconditions


def check_setup(a):
    """Clear errors for what is missing: the venv, its packages, the assets."""
    py = os.path.join(a.venv, "bin", "python")
    if not os.path.exists(os.path.join(ROOT, py)):
        raise BenchError(f"no Python reference environment at {a.venv} (run `make ref-env`; the PyTorch and ONNX Runtime sides need it)")
    probe = "import torch, transformers, adapters, onnx, onnxruntime, safetensors; print(torch.__version__, transformers.__version__, adapters.__version__, onnxruntime.__version__)"
    p = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise BenchError(f"{py} lacks a package the sides need ({p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'no output'}); run `make ref-env`")
    for path, what in ((MINILM, "the all-MiniLM-L6-v2 folder"), (SPAM, "the prepared SpamAssassin data")):
        if not os.path.exists(os.path.join(ROOT, path)):
            raise BenchError(f"{path} is missing: {what} (run `make assets`)")
    if not os.access(os.path.join(ROOT, TG), os.X_OK):
        raise BenchError(f"{TG} is missing (make bench-torch builds it; or `make build`)")
    return py, p.stdout.split()


def prepare_model(py, name):
    m = MODELS[name]
    if "make" in m:
        run([py, os.path.join("tests", "ref", "make_bert.py"), "--out", m["dir"], "--vocab-from", MINILM] + m["make"])
    return m["dir"]


def export_onnx(py, model_dir, name, fused):
    """The ort sides' model, exported once and kept while it is newer than
    the weights and the exporting script."""
    out = os.path.join("build", "bench", "onnx", f"{name}{'-fused' if fused else ''}.onnx")
    src = [os.path.join(model_dir, "model.safetensors"), WORKER]
    if os.path.exists(out) and all(os.path.getmtime(out) > os.path.getmtime(s) for s in src):
        return out, None
    log(f"exporting {out}")
    stdout = run([py, WORKER, "export", "--model", model_dir, "--out", out] + (["--optimize"] if fused else []), env=env())
    fusions = None
    for line in stdout.splitlines():
        if line.startswith("{"):
            fusions = json.loads(line).get("fused")
    if fused:
        with open(out + ".fusions.json", "w") as f:
            json.dump(fusions, f)
    return out, fusions


# ---------------------------------------------------------------- the sides


class Side:
    """One side's process: started, warmed up, released one repetition at a
    time, then reaped for its peak RSS."""

    def __init__(self, name, cmd, logpath):
        self.name, self.cmd, self.logpath = name, cmd, logpath
        self.lines, self.reps = [], []
        self.err = open(logpath, "w")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, cwd=ROOT, env=env(), bufsize=1)

    def read_until(self, event):
        while True:
            line = self.p.stdout.readline()
            if not line:
                self.p.wait()
                self.err.close()
                with open(self.logpath) as f:
                    tail = f.read()[-3000:]
                raise BenchError(f"side {self.name} ended (exit {self.p.returncode}) before its {event!r} line: {' '.join(self.cmd)}\n{tail}")
            if not line.startswith("{"):
                continue
            v = json.loads(line)
            self.lines.append(v)
            if v.get("event") == event:
                return v

    def rep(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        self.reps.append(self.read_until("rep"))

    def finish(self):
        self.p.stdin.close()
        summary = self.read_until("summary")
        _, status, ru = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.err.close()
        if self.p.returncode != 0:
            raise BenchError(f"side {self.name} exited {self.p.returncode}: see {self.logpath}")
        return {"setup": self.lines[0], "reps": self.reps, "summary": summary, "maxrss_mib": ru.ru_maxrss / 1024,
                "cmd": self.cmd}


def side_cmd(a, py, side, model_dir, batches, wl, task, onnx):
    t = TASKS[task]
    if side == "ours":
        cmd = [TG, "bench", "--model", model_dir, "--device", "cpu", "--mode", t["mode"], "--strategy", t["strategy"],
               "--bottleneck", "64", "--batch-size", str(wl["batch"]), "--seq-len", str(wl["seq_len"]), "--reps", str(a.reps),
               "--json", "--sync-stdin"]
        if wl["data"]:
            return cmd + ["--data", SPAM, "--batches", str(wl["batches"])]
        return cmd + ["--steps", str(wl["steps"])]
    cmd = [py, WORKER, "worker", "--model", model_dir, "--batches", batches, "--mode", t["mode"], "--strategy", t["strategy"],
           "--bottleneck", "64", "--threads", str(THREADS), "--reps", str(a.reps), "--sync-stdin"]
    if side.startswith("ort"):
        return cmd + ["--side", "ort", "--onnx", onnx[side]]
    return cmd + ["--side", side]


def run_group(a, py, key, sides_cmds):
    """Starts the sides one after another (each warms up alone), then runs
    the repetitions interleaved; with --serial one side at a time, start to
    exit (less memory, no interleaving)."""
    if a.serial:
        out = {}
        for name, cmd in sides_cmds:
            out.update(run_group(argparse.Namespace(**{**vars(a), "serial": False}), py, key, [(name, cmd)]))
        return out
    sides = []
    try:
        for name, cmd in sides_cmds:
            s = Side(name, cmd, os.path.join(OUT, "logs", f"{key}-{name}.log"))
            sides.append(s)
            s.read_until("ready")
        for r in range(a.reps):
            k = r % len(sides)
            for s in sides[k:] + sides[:k]:
                time.sleep(a.gap)  # lets the previous side's spinning threads go idle
                s.rep()
        return {s.name: s.finish() for s in sides}
    finally:
        for s in sides:
            if s.p.poll() is None:
                s.p.kill()
                s.p.wait()


# ---------------------------------------------------------------- profile


FAMILIES = [  # first match over the whole stack wins: an adapter's GEMMs count as the adapter's
    ("adapter", re.compile(r"AdapterForward|AdapterBackward|adapterBackward")),
    ("attention/softmax", re.compile(r"attnTask|[Aa]ttention|[Ss]oftmax|smTask")),
    ("GELU", re.compile(r"gelu|GELU|\.erf$")),
    ("LayerNorm", re.compile(r"lnTask|LayerNorm")),
    ("GEMM", re.compile(r"sgemm|[Gg]emm|packA|packB|macroKernel|copyRows16")),
    ("optimizer (AdamW, norm, clip)", re.compile(r"adamw|AdamW|sumSq|SumSquares|GradNorm|\.Scale$")),
    ("dropout", re.compile(r"[Dd]ropout")),
    ("embedding", re.compile(r"[Ee]mbedding|embTask")),
]


def short(frame):
    """A pprof frame without its package path (the module path itself
    contains "adapters")."""
    return frame.strip().rsplit("/", 1)[-1]


def profile_families(prof):
    """Shares of CPU samples by op family, from `go tool pprof -traces`, and
    the GEMM micro-kernels' shares (which kernel ran)."""
    out = run(["go", "tool", "pprof", "-traces", TG, prof])
    totals, other, kernels, total = {}, {}, {}, 0.0
    for block in out.split("-----------+-------------------------------------------------------")[1:]:
        lines = [l for l in block.strip("\n").splitlines() if l.strip()]
        m = re.match(r"\s*([\d.]+)(ns|us|µs|ms|s)\s+(.*)", lines[0]) if lines else None
        if not m:
            continue
        v = float(m.group(1)) * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
        frames = [short(m.group(3))] + [short(l) for l in lines[1:]]
        total += v
        fam = next((n for n, rx in FAMILIES if any(rx.search(f) for f in frames)), "other")
        totals[fam] = totals.get(fam, 0) + v
        if fam == "other":
            other[frames[0]] = other.get(frames[0], 0) + v
        if "sgemmKernel" in frames[0]:
            kernels[frames[0]] = kernels.get(frames[0], 0) + v
    if not total:
        return {"seconds": 0, "shares": {}, "other_top": [], "gemm_kernels": {}}
    shares = {k: v / total for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
    top_other = sorted(other.items(), key=lambda kv: -kv[1])[:5]
    return {"seconds": total, "shares": shares, "other_top": [(f, v / total) for f, v in top_other],
            "gemm_kernels": {k: v / total for k, v in kernels.items()}}


def run_profiles(a, groups_spec, res):
    """One extra run of ours per profiled group with --cpuprofile (one
    repetition after the usual warm-up), kept apart from the timed runs."""
    for key, (model_dir, wl, task) in groups_spec.items():
        t = TASKS[task]
        prof = os.path.join(OUT, f"{key}.pprof")
        cmd = side_cmd(a, None, "ours", model_dir, None, wl, task, None)
        cmd = [c for c in cmd if c != "--sync-stdin"]
        cmd[cmd.index("--reps") + 1] = "1"
        run(cmd + ["--cpuprofile", prof], env=env())
        res[key] = profile_families(prof)
        res[key]["task"], res[key]["mode"] = task, t["mode"]


# ------------------------------------------------------------ FLOPs, peak


def model_flops(cfg, batches, task, m=64):
    """FLOPs of one pass of our step over the batches (padded shapes, as
    computed): linear layers 2·N·in·out, attention 4·B·T²·d a layer forward;
    backward: input gradients as much again (attention twice), weight
    gradients of what trains as much again."""
    d, f, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    total = 0
    for B, T in batches:
        N = B * T
        lin, att = L * N * (8 * d * d + 4 * d * f), L * 4 * B * T * T * d
        ad = L * N * 8 * d * m if task == "train-adapters" else 0
        fwd = lin + att + ad
        if task in ("forward", "train-head"):
            total += fwd
        elif task == "train-adapters":
            total += fwd + (lin + 2 * att + ad) + ad
        elif task == "train-full":
            total += fwd + (lin + 2 * att) + lin
    return total


def cpu_facts():
    facts = {"model": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        first = lambda k: (re.search(rf"^{k}\s*:\s*(.*)$", info, re.M) or [None, ""])[1].strip()  # noqa: E731
        flags = first("flags").split()
        facts.update(model=first("model name"), family=int(first("cpu family") or 0), model_id=int(first("model") or 0),
                     mhz=float(first("cpu MHz") or 0), avx512f="avx512f" in flags, avx2="avx2" in flags)
    except OSError:
        pass
    facts["cpus"] = os.cpu_count()
    return facts


def fma_peak(a, cpu):
    """FP32 peak = cores × FMA units × lanes × 2 flops × clock. The clock is
    BenchmarkFMAPeak's GFLOP per CPU-second on one core (12 independent
    8-wide FMA chains) over its 2 units × 8 lanes × 2 = 32 flops a cycle, or
    /proc/cpuinfo's MHz with --quick. Lanes are 16 where the GEMM kernel is
    AVX-512 and the core executes 512-bit FMAs at full width (AMD family
    0x1A, Zen 5), 8 otherwise (Zen 4 splits a 512-bit FMA in two halves)."""
    p = {"cores": THREADS, "fma_units": 2}
    p["lanes"] = 16 if cpu.get("avx512f") and cpu.get("family") == 0x1A else 8
    ghz, how = cpu.get("mhz", 0) / 1000, "/proc/cpuinfo cpu MHz"
    if not a.quick:
        out = run(["go", "test", "./cpu_fallback", "-run", "^$", "-bench", "^BenchmarkFMAPeak$", "-benchtime", "200x"], env=env())
        m = re.search(r"BenchmarkFMAPeak/1core\S*\s+\d+\s+.*?([\d.]+) GFLOP/cpu-s", out)
        if m:
            ghz, how = float(m.group(1)) / 32, "BenchmarkFMAPeak/1core GFLOP/cpu-s / 32"
            p["fma_bench"] = out.strip().splitlines()
    p.update(clock_ghz=ghz, clock_from=how, gflops=p["cores"] * p["fma_units"] * p["lanes"] * 2 * ghz,
             gflops_avx2=p["cores"] * p["fma_units"] * 8 * 2 * ghz)
    return p


# ---------------------------------------------------------------- report


def fmt_rate(r):
    if not r:
        return "-"
    return f"{r['tok_s']:,.0f} tok/s ({r['median_s']:.3g} s; {r['min_s']:.3g}–{r['max_s']:.3g})"


def group_rows(res):
    """Per group and side: median, min and max seconds a pass, real tokens/s."""
    rows = {}
    for key, g in res["groups"].items():
        for side, s in g["sides"].items():
            walls = [r["wall_s"] for r in s["reps"]]
            med = statistics.median(walls)
            rows.setdefault(key, {})[side] = {"median_s": med, "min_s": min(walls), "max_s": max(walls),
                                              "tok_s": g["real_tokens"] / med, "rss": s["maxrss_mib"],
                                              "cpu_s": statistics.median([r["cpu_s"] for r in s["reps"]])}
    return rows


def ratio_cell(rows, task, side, ours):
    """Side time / our time (above 1: ours is faster), with the target."""
    if side == "ort":  # the better of the two ORT variants
        cands = [rows[s] for s in ("ort", "ort-fused") if s in rows]
        other = min(cands, key=lambda r: r["median_s"]) if cands else None
    else:
        other = rows.get(side)
    if not other or not ours:
        return "-"
    x = other["median_s"] / ours["median_s"]
    t = TARGETS.get((task, side))
    return f"{x:.2f}x" + (f" ({'meets' if x >= t else 'below'} {t}x)" if t else "")


def render(res):
    rows = group_rows(res)
    m = res["meta"]
    out = [f"CPU: {m['cpu']['model']} (family 0x{m['cpu'].get('family', 0):x}, model 0x{m['cpu'].get('model_id', 0):x}), "
           f"{m['cpu']['cpus']} CPUs, {THREADS} threads per side; {m['date']}; commit {m['commit']}; {m['go']}; "
           f"torch {m['versions'][0]}, transformers {m['versions'][1]}, adapters {m['versions'][2]}, onnxruntime {m['versions'][3]}",
           f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in m['loadavg_before'])}; after: "
           + (' '.join(f'{x:.2f}' for x in res['loadavg_after']) if 'loadavg_after' in res else "(run not finished)"),
           f"reps {m['reps']} (interleaved, warm-up excluded); cells: real tokens/s of the median pass (median s; min–max s); "
           "ratios: side time / our time (above 1: ours faster); ORT ratio against the faster ORT variant", ""]
    for model in res["models"]:
        out += [f"### {model}", "",
                "| workload | task | ours | PyTorch stack | PyTorch lean | ORT | ORT + fusions | ours vs stack | vs lean | vs ORT |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for key, g in res["groups"].items():
            if g["model"] != model:
                continue
            r = rows[key]
            ours = r.get("ours")
            out.append(f"| {g['workload_desc']} | {g['task']} | " + " | ".join(fmt_rate(r.get(s)) for s in ("ours", "stack", "lean", "ort", "ort-fused"))
                       + " | " + " | ".join(ratio_cell(r, g["task"], s, ours) for s in ("stack", "lean", "ort")) + " |")
        out.append("")
    out += ["### Per CPU-second (median process CPU seconds a pass, side / ours: steadier than wall time on a loaded machine; a side's spinning threads count against it)", "",
            "| model | workload | task | ours CPU-s | stack | lean | ORT | ORT + fusions | load 1-min before → after |", "|---|---|---|---|---|---|---|---|---|"]
    for key, g in res["groups"].items():
        r = rows[key]
        o = r.get("ours")
        cell = lambda s: f"{r[s]['cpu_s'] / o['cpu_s']:.2f}x" if s in r and o and o["cpu_s"] > 0 else "-"  # noqa: E731
        load = f"{g['loadavg_before'][0]:.1f} → {g['loadavg_after'][0]:.1f}" if "loadavg_before" in g else f"→ {g['loadavg_after'][0]:.1f}"
        out.append(f"| {g['model']} | {g['workload_desc']} | {g['task']} | {o['cpu_s'] if o else 0:.3g} | "
                   + " | ".join(cell(s) for s in ("stack", "lean", "ort", "ort-fused")) + f" | {load} |")
    out.append("")
    out += ["### Peak resident memory (MiB, each side its own process: ru_maxrss)", "",
            "| model | workload | task | ours | stack | lean | ORT | ORT + fusions | ours / stack | ours / lean |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, g in res["groups"].items():
        r = rows[key]
        cell = lambda s: f"{r[s]['rss']:,.0f}" if s in r else "-"  # noqa: E731
        rat = lambda s: f"{r['ours']['rss'] / r[s]['rss']:.2f}" if s in r and "ours" in r else "-"  # noqa: E731
        tgt = f" (target ≤ {RSS_TARGET})" if g["task"] == "train-adapters" else ""
        out.append(f"| {g['model']} | {g['workload_desc']} | {g['task']} | " + " | ".join(cell(s) for s in ("ours", "stack", "lean", "ort", "ort-fused"))
                   + f" | {rat('stack')}{tgt} | {rat('lean')}{tgt} |")
    out.append("")
    if res.get("onnx_fusions"):
        out += [f"ORT + fusions: onnxruntime.transformers.optimizer (model_type bert) fused {json.dumps({k: v for k, v in f.items() if v})} ({mn})"
                for mn, f in res["onnx_fusions"].items() if f] + [""]
    pk = res.get("peak")
    if pk:
        out += [f"FP32 peak = {pk['cores']} cores × {pk['fma_units']} FMA units × {pk['lanes']} lanes × 2 × {pk['clock_ghz']:.2f} GHz "
                f"({pk['clock_from']}) = {pk['gflops']:.0f} GFLOP/s", ""]
        out += [f"AVX2 peak (8 lanes; sgemm uses AVX-512 where it was measured faster, AMD family 0x1A, or with HOULSBY_GEMM_AVX512=1, else AVX2: the profile below names the kernels that ran): {pk['gflops_avx2']:.0f} GFLOP/s; "
                f"HOULSBY_GEMM_AVX512={m.get('gemm_avx512_env') or '<unset>'}", "",
                "wall: model GFLOP / our median wall seconds, against the 2-core peak; CPU: model GFLOP / our median CPU seconds, "
                "against one core's peak (what a core did while it ran, whatever else loaded the machine)", "",
                "| model | workload | task | model GFLOP a pass | ours median s | GFLOP/s wall | of peak | of AVX2 peak | GFLOP/CPU-s | of core peak | of AVX2 core peak |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, g in res["groups"].items():
            o = rows[key].get("ours")
            if o:
                gf = g["flops"] / 1e9
                w, c = gf / o["median_s"], gf / o["cpu_s"] if o["cpu_s"] > 0 else 0
                core, core2 = pk["gflops"] / pk["cores"], pk["gflops_avx2"] / pk["cores"]
                out.append(f"| {g['model']} | {g['workload_desc']} | {g['task']} | {gf:,.4g} | {o['median_s']:.3g} | {w:.0f} | "
                           f"{w / pk['gflops']:.0%} | {w / pk['gflops_avx2']:.0%} | {c:.0f} | {c / core:.0%} | {c / core2:.0%} |")
        out.append("")
    for key, p in res.get("profiles", {}).items():
        shares = ", ".join(f"{k} {v:.0%}" for k, v in p["shares"].items())
        top = "; ".join(f"{f} {v:.0%}" for f, v in p["other_top"])
        kern = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.0%}" for k, v in p.get("gemm_kernels", {}).items())
        out.append(f"profile {key} ({p['seconds']:.1f} CPU-s sampled): {shares}. Other's top: {top}. GEMM micro-kernels: {kern}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------- main


def workloads(a, mname):
    if a.quick:
        return {"spam": {"data": True, "batch": 4, "seq_len": 32, "batches": 2}}
    scale = lambda n: max(1, round(n * MODELS[mname].get("per_rep", 1)))  # noqa: E731
    wls = {"fixed": {"data": False, "batch": 32, "seq_len": 128, "steps": scale(a.steps)},
           "spam": {"data": True, "batch": 32, "seq_len": 128, "batches": scale(a.batches)}}
    return {k: wls[k] for k in a.workloads.split(",")}


def describe(wl, dump):
    if wl["data"]:
        ts = [max(len(r) for r in b["ids"]) for b in dump["batches"]]
        return (f"SpamAssassin train, {len(ts)} batches of {wl['batch']}, ≤{wl['seq_len']} tokens "
                f"(T {min(ts)}–{max(ts)}, {dump['real_tokens'] / dump['tokens']:.0%} real)")
    n = len(dump["batches"])
    return f"B={wl['batch']} T={wl['seq_len']} all real, {n} step{'s' if n > 1 else ''}"


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model, 2 small real batches, forward and adapter steps, 1 repetition")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per side (default 5; --quick 1)")
    ap.add_argument("--models", default="minilm,bert-base", help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--workloads", default="fixed,spam", help="fixed (B=32 T=128 random ids), spam (real batches)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    ap.add_argument("--steps", type=int, default=2, help="steps a repetition on the fixed workload (BERT-base: half)")
    ap.add_argument("--batches", type=int, default=4, help="real batches a repetition on the spam workload (BERT-base: half)")
    ap.add_argument("--serial", action="store_true",
                    help="run the sides of a group one after another instead of interleaved (when their sum of memory does not fit)")
    ap.add_argument("--gap", type=float, default=0.3, help="seconds between repetitions")
    ap.add_argument("--venv", default=".venv-ref")
    ap.add_argument("--out", default=OUT, help=f"folder of results.json, results.md, logs, profiles (default {OUT})")
    ap.add_argument("--render", metavar="RESULTS_JSON", nargs="+", help="only print the tables of earlier results.json files (merged in order)")
    a = ap.parse_args()
    OUT = a.out
    if a.render:
        print(render(merge(a.render)), end="")
        return
    if a.quick:
        a.reps, a.models, a.tasks = (1 if "--reps" not in sys.argv else a.reps), "tiny", "forward,train-adapters"
    os.chdir(ROOT)
    for t in a.tasks.split(","):
        if t not in TASKS:
            raise BenchError(f"--tasks: unknown task {t!r} (known: {', '.join(TASKS)})")
    for mname in a.models.split(","):
        if mname not in MODELS:
            raise BenchError(f"--models: unknown model {mname!r} (known: {', '.join(MODELS)})")
    py, versions = check_setup(a)
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    res = {"meta": meta(a, versions), "models": a.models.split(","), "groups": {}, "onnx_fusions": {}}
    profile_spec = {}
    for mname in res["models"]:
        run_model(a, py, mname, res, profile_spec)
    res["loadavg_after"] = os.getloadavg()
    res["profiles"] = {}
    run_profiles(a, profile_spec, res["profiles"])
    res["peak"] = fma_peak(a, res["meta"]["cpu"])
    save(res)
    print(render(res), end="")
    log(f"wrote {OUT}/results.json and {OUT}/results.md")


def meta(a, versions):
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    if run(["git", "status", "--porcelain", "--untracked-files=no"]).strip():
        commit += " (with uncommitted changes)"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "go": run(["go", "version"]).strip().removeprefix("go version "), "cpu": cpu_facts(), "versions": versions,
            "loadavg_before": os.getloadavg(), "reps": a.reps, "gemm_avx512_env": os.environ.get("HOULSBY_GEMM_AVX512", ""), "threads": THREADS, "argv": sys.argv[1:]}


def run_model(a, py, mname, res, profile_spec):
    mdir = prepare_model(py, mname)
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    tasks = a.tasks.split(",")
    onnx = {}
    if "forward" in tasks:
        onnx["ort"], _ = export_onnx(py, mdir, mname, False)
        onnx["ort-fused"], fus = export_onnx(py, mdir, mname, True)
        if fus is None and os.path.exists(onnx["ort-fused"] + ".fusions.json"):
            with open(onnx["ort-fused"] + ".fusions.json") as f:
                fus = json.load(f)
        res["onnx_fusions"][mname] = fus
    for wname, wl in workloads(a, mname).items():
        batches = os.path.join(OUT, f"batches-{mname}-{wname}.json")
        dump_cmd = side_cmd(a, py, "ours", mdir, None, wl, tasks[0], None)
        run([c for c in dump_cmd if c not in ("--json", "--sync-stdin")] + ["--dump-batches", batches], env=env())
        with open(os.path.join(ROOT, batches)) as f:
            dump = json.load(f)
        shapes = [(len(b["ids"]), max(len(r) for r in b["ids"])) for b in dump["batches"]]
        for task in tasks:
            key = f"{mname}-{wname}-{task}"
            load0 = os.getloadavg()
            log(f"{key}: {', '.join(TASKS[task]['sides'])} (load average {load0[0]:.2f})")
            cmds = [(s, side_cmd(a, py, s, mdir, batches, wl, task, onnx)) for s in TASKS[task]["sides"]]
            sides = run_group(a, py, key, cmds)
            res["groups"][key] = {"model": mname, "workload": wname, "workload_desc": describe(wl, dump), "task": task,
                                  "real_tokens": dump["real_tokens"], "tokens": dump["tokens"], "shapes": shapes,
                                  "flops": model_flops(cfg, shapes, task), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
                                  "sides": sides}
            save(res)
            if wname == next(iter(workloads(a, mname))) and task in ("forward", "train-adapters"):
                profile_spec[key] = (mdir, wl, task)


def merge(paths):
    """Several runs' results as one: the first run's header, every run's
    groups, profiles and fusions, the last peak."""
    res = None
    for p in paths:
        with open(p) as f:
            r = json.load(f)
        if res is None:
            res = r
            continue
        res["models"] += [m for m in r["models"] if m not in res["models"]]
        for k in ("groups", "profiles", "onnx_fusions"):
            res.setdefault(k, {}).update(r.get(k, {}))
        res["peak"] = r.get("peak") or res.get("peak")
        res["loadavg_after"] = r.get("loadavg_after", res.get("loadavg_after"))
        res["meta"].setdefault("merged", []).append(r["meta"])
    return res


def save(res):
    with open(os.path.join(ROOT, OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    if res.get("groups"):
        with open(os.path.join(ROOT, OUT, "results.md"), "w") as f:
            f.write(render(res))


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(str(e))
        sys.exit(1)
