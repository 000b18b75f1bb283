// common.cuh: helpers shared by every kernel file. Compiled by nvcc and, in
// the CPU emulator, by g++ against kernels/emu (whose <cuda_bf16.h> and
// <mma.h> stand-ins pull in cuda_emu.h).
#ifndef KERNELS_COMMON_CUH
#define KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <mma.h>

// DYN_SHARED(T, name) declares name as a T* to the block's dynamic shared
// memory (the launch's sharedBytes). The emulator defines its own.
#ifndef DYN_SHARED
#define DYN_SHARED(T, name)                                        \
    extern __shared__ __align__(16) unsigned char name##_raw[]; \
    T* name = reinterpret_cast<T*>(name##_raw)
#endif

typedef __nv_bfloat16 bf16;

// ld widens one stored element to float.
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return __bfloat162float(*p); }

// st stores a float, rounding to nearest even for bf16.
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) { *p = __float2bfloat16_rn(v); }

// splitmix64 is backend.splitmix64 (Steele et al.'s SplitMix64 finaliser).
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// dropout_thresh is backend.DropoutKeep's uint32(p·2²⁴): p is a float32
// carried in a double, and the product by a power of two is exact.
__device__ __forceinline__ unsigned int dropout_thresh(double p) {
    return (unsigned int)((float)p * 16777216.0f);
}

// dropout_keep is backend.DropoutKeep(seed, i, p) for p > 0, bit for bit.
__device__ __forceinline__ bool dropout_keep(unsigned long long seed, long long i, unsigned int thresh) {
    unsigned long long h = splitmix64(seed ^ splitmix64((unsigned long long)i));
    return (unsigned int)(h >> 40) >= thresh;
}

// The nonlinearities of backend.Act: act 0 ReLU, 1 GELU (exact erf form
// x·Φ(x)), 2 Swish x·σ(x), and their derivatives (ReLU'(0) = 0, as in
// PyTorch; GELU' = Φ(x) + x·φ(x)). Shared by the pointwise act kernels
// (elementwise.cu) and the fused adapter (adapter.cu).
__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_grad_f(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;  // 1/√(2π)
    return cdf + x * pdf;
}
__device__ __forceinline__ float act_f(long long act, float x) {
    switch (act) {
        case 0:
            return x > 0.0f ? x : 0.0f;
        case 1:
            return gelu_f(x);
        default:
            return x * sigmoid_f(x);
    }
}
__device__ __forceinline__ float act_grad_f(long long act, float x) {
    switch (act) {
        case 0:
            return x > 0.0f ? 1.0f : 0.0f;
        case 1:
            return gelu_grad_f(x);
        default: {
            float s = sigmoid_f(x);
            return s + x * s * (1.0f - s);
        }
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// block_sum returns the sum of v over the block (blockDim.x a multiple of 32,
// at most 1024) to every thread. scratch holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[w] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[w] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

// Grid-stride loop over [0, n).
#define GRID_STRIDE(i, n)                                                          \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

#endif  // KERNELS_COMMON_CUH
