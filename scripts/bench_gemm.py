#!/usr/bin/env python3
"""Times numpy/OpenBLAS float32 GEMM on the shapes of BenchmarkGemm.

    bench_gemm.py --info                   print the BLAS threadpoolctl sees
    bench_gemm.py SHAPE ITERS              print GFLOP/s and GFLOP/cpu-s of one shape

SHAPE is MxNxK_tAtB as in cpu_fallback/gemm_bench_test.go (N/T: op(X) = X
or X^T; op(A) is MxK, op(B) is KxN). Transposed operands are passed as
transposed views of contiguous arrays, so numpy hands OpenBLAS the transpose
flag and no copy is made (the same storage our sgemm reads). The output is
preallocated (out=), C = A.B with beta = 0 as in the Go benchmark. After one
warm-up call, ITERS calls are timed together and the mean rate is printed,
the same method as Go's testing.B with -benchtime=ITERSx. The second number
divides by the process CPU time (all threads) instead of wall time, like the
Go benchmark's GFLOP/cpu-s metric.
"""
import sys
import time

import numpy as np


def parse(shape):
    dims, trans = shape.split("_")
    m, n, k = (int(x) for x in dims.split("x"))
    return m, n, k, trans[0] == "T", trans[1] == "T"


def gflops(shape, iters):
    m, n, k, ta, tb = parse(shape)
    rng = np.random.default_rng(1)
    a = (rng.random((k, m) if ta else (m, k), dtype=np.float32) * 2 - 1)
    b = (rng.random((n, k) if tb else (k, n), dtype=np.float32) * 2 - 1)
    opa = a.T if ta else a
    opb = b.T if tb else b
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(opa, opb, out=c)  # warm-up: thread pool, page faults
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        np.matmul(opa, opb, out=c)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    flops = 2.0 * m * n * k * iters
    return flops / dt / 1e9, flops / dc / 1e9


def main():
    if sys.argv[1:] == ["--info"]:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print("  ".join(f"{key}={pool.get(key)}" for key in
                            ("internal_api", "version", "architecture", "num_threads", "threading_layer")))
        print(f"numpy={np.__version__}")
        return
    shape, iters = sys.argv[1], int(sys.argv[2])
    wall, cpu = gflops(shape, iters)
    print(f"{wall:.2f} {cpu:.2f}")


if __name__ == "__main__":
    main()
