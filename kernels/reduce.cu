// reduce.cu: out[0] = Σ x[i]² with fp32 accumulation, the reduction behind
// gradient-norm clipping. Deterministic: every partition depends on n
// alone (not on timing), and partial sums are added in a fixed order.
//   small n: sumsq_<x>, one block of 256 threads;
//   large n: sumsq_partial_<x> (block b sums x[b·chunk, (b+1)·chunk) into
//            part[b]), then sum_f32 over the partials.
#include "common.cuh"

template <class X>
__device__ void sumsq_range(float* out, const X* x, long long lo, long long hi) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float v = ld(x + i);
        s += v * v;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}

template <class X>
__device__ void sumsq_partial_body(float* part, const X* x, long long n, long long chunk) {
    long long lo = (long long)blockIdx.x * chunk;
    long long hi = lo + chunk < n ? lo + chunk : n;
    sumsq_range(part + blockIdx.x, x, lo, hi);
}

extern "C" __global__ void sumsq_f32(float* out, const float* x, long long n) { sumsq_range(out, x, 0, n); }
extern "C" __global__ void sumsq_bf16(float* out, const bf16* x, long long n) { sumsq_range(out, x, 0, n); }
extern "C" __global__ void sumsq_partial_f32(float* part, const float* x, long long n, long long chunk) {
    sumsq_partial_body(part, x, n, chunk);
}
extern "C" __global__ void sumsq_partial_bf16(float* part, const bf16* x, long long n, long long chunk) {
    sumsq_partial_body(part, x, n, chunk);
}

// sum_f32: out[0] = Σ x[i], one block (fixed order).
extern "C" __global__ void sum_f32(float* out, const float* x, long long n) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}
