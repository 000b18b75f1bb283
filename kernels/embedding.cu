// embedding.cu: row gather and its deterministic scatter-add backward.
// Suffixes: embedding_fwd_<x>_<w> (out storage x, table storage w),
// embedding_bwd_<x> (dout storage x; dtable is float).
#include "common.cuh"

// embedding_fwd: out[n, :] (=, or += with accumulate) table[ids[n], :].
// An id outside [0, V) (the launcher rejects it first) writes NaN.
template <class X, class W>
__device__ void embedding_fwd_body(X* out, const int* ids, const W* table, long long N, long long C, long long V,
                                   long long accumulate) {
    GRID_STRIDE(i, N * C) {
        long long n = i / C, c = i % C;
        int id = ids[n];
        float v = (id >= 0 && id < V) ? ld(table + (long long)id * C + c) : NAN;
        st(out + i, accumulate ? ld(out + i) + v : v);
    }
}

// embedding_bwd: dtable[ids[n], c] += dout[n, c]. One thread per column
// walks the rows in order, so repeated ids add up in a fixed order: no
// atomics, bitwise deterministic. ids outside [0, V) are skipped.
template <class X>
__device__ void embedding_bwd_body(float* dtable, const X* dout, const int* ids, long long N, long long C, long long V) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (long long n = 0; n < N; n++) {
        int id = ids[n];
        if (id >= 0 && id < V) dtable[(long long)id * C + c] += ld(dout + n * C + c);
    }
}

#define EMB_FWD_KERNEL(X, W, sfx)                                                                             \
    extern "C" __global__ void embedding_fwd_##sfx(X* out, const int* ids, const W* table, long long N,     \
                                                   long long C, long long V, long long accumulate) {         \
        embedding_fwd_body(out, ids, table, N, C, V, accumulate);                                             \
    }
EMB_FWD_KERNEL(float, float, f32_f32)
EMB_FWD_KERNEL(float, bf16, f32_bf16)
EMB_FWD_KERNEL(bf16, float, bf16_f32)
EMB_FWD_KERNEL(bf16, bf16, bf16_bf16)

#define EMB_BWD_KERNEL(X, sfx)                                                                                      \
    extern "C" __global__ void embedding_bwd_##sfx(float* dtable, const X* dout, const int* ids, long long N,     \
                                                   long long C, long long V) {                                     \
        embedding_bwd_body(dtable, dout, ids, N, C, V);                                                             \
    }
EMB_BWD_KERNEL(float, f32)
EMB_BWD_KERNEL(bf16, bf16)
