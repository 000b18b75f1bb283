// embedding.cu: row gather and its deterministic scatter-add backward.
#include "common.cuh"

// embedding_fwd: out[n, :] (=, or += with accumulate) table[ids[n], :].
// An id outside [0, V) writes NaN (the host validates ids before upload;
// the kernel cannot return an error).
template <class W>
__device__ void embedding_fwd_body(float* out, const int* ids, const W* table, long long N, long long C, long long V,
                                   long long accumulate) {
    GRID_STRIDE(i, N * C) {
        long long n = i / C, c = i % C;
        int id = ids[n];
        float v = (id >= 0 && id < V) ? ld(table + (long long)id * C + c) : NAN;
        out[i] = accumulate ? out[i] + v : v;
    }
}
extern "C" __global__ void embedding_fwd_f32(float* out, const int* ids, const float* table, long long N, long long C,
                                             long long V, long long accumulate) {
    embedding_fwd_body(out, ids, table, N, C, V, accumulate);
}
extern "C" __global__ void embedding_fwd_bf16(float* out, const int* ids, const bf16* table, long long N, long long C,
                                              long long V, long long accumulate) {
    embedding_fwd_body(out, ids, table, N, C, V, accumulate);
}

// embedding_bwd_f32: dtable[ids[n], c] += dout[n, c]. One thread per column
// walks the rows in order, so repeated ids add up in a fixed order: no
// atomics, bitwise deterministic. ids outside [0, V) are skipped.
extern "C" __global__ void embedding_bwd_f32(float* dtable, const float* dout, const int* ids, long long N, long long C,
                                             long long V) {
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (long long n = 0; n < N; n++) {
        int id = ids[n];
        if (id >= 0 && id < V) dtable[(long long)id * C + c] += dout[n * C + c];
    }
}
