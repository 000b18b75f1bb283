// reduce.cu: out[0] = Σ x[i]² with fp32 accumulation, the reduction behind
// gradient-norm clipping. One block of 256 threads (fixed), each striding
// over x in order, then a fixed-order block reduction: deterministic.
#include "common.cuh"

template <class X>
__device__ void sumsq_body(float* out, const X* x, long long n) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        float v = ld(x + i);
        s += v * v;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}
extern "C" __global__ void sumsq_f32(float* out, const float* x, long long n) { sumsq_body(out, x, n); }
extern "C" __global__ void sumsq_bf16(float* out, const bf16* x, long long n) { sumsq_body(out, x, n); }
