// elementwise.cu: pointwise ops, bias add and bias gradient, dropout,
// f32 <-> bf16 conversion. Activations are float; a bias may be bf16.
// 1-D kernels use grid-stride loops, so any 1-D grid is correct.
#include "common.cuh"

template <class W>
__device__ void bias_add_body(float* x, const W* bias, long long N, long long C) {
    GRID_STRIDE(i, N * C) { x[i] += ld(bias + i % C); }
}
extern "C" __global__ void bias_add_f32(float* x, const float* bias, long long N, long long C) {
    bias_add_body(x, bias, N, C);
}
extern "C" __global__ void bias_add_bf16(float* x, const bf16* bias, long long N, long long C) {
    bias_add_body(x, bias, N, C);
}

// bias_grad_f32: dbias[c] += Σ_n dout[n, c]. Block (32, 8) owns 32 columns:
// threadIdx.y walks rows y, y+8, ... in order, then the 8 partial sums are
// added in a fixed order, so the result is deterministic. grid ceil(C/32).
extern "C" __global__ void bias_grad_f32(float* dbias, const float* dout, long long N, long long C) {
    __shared__ float part[8][33];
    long long c = (long long)blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < C)
        for (long long n = threadIdx.y; n < N; n += 8) s += dout[n * C + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
        dbias[c] += t;
    }
}

extern "C" __global__ void add_f32(float* out, const float* a, const float* b, long long n) {
    GRID_STRIDE(i, n) { out[i] = a[i] + b[i]; }
}

extern "C" __global__ void scale_f32(float* x, double alpha, long long n) {
    float s = (float)alpha;
    GRID_STRIDE(i, n) { x[i] *= s; }
}

// Exact GELU x·Φ(x) = x/2·(1+erf(x/√2)); derivative Φ(x) + x·φ(x).
__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_grad_f(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;  // 1/√(2π)
    return cdf + x * pdf;
}

extern "C" __global__ void gelu_fwd_f32(float* out, const float* inp, long long n) {
    GRID_STRIDE(i, n) { out[i] = gelu_f(inp[i]); }
}
extern "C" __global__ void gelu_bwd_f32(float* dinp, const float* dout, const float* inp, long long n) {
    GRID_STRIDE(i, n) { dinp[i] = dout[i] * gelu_grad_f(inp[i]); }
}
extern "C" __global__ void tanh_fwd_f32(float* out, const float* inp, long long n) {
    GRID_STRIDE(i, n) { out[i] = tanhf(inp[i]); }
}
extern "C" __global__ void tanh_bwd_f32(float* dinp, const float* dout, const float* out, long long n) {
    GRID_STRIDE(i, n) {
        float y = out[i];
        dinp[i] = dout[i] * (1.0f - y * y);
    }
}

// dropout: out[i] = inp[i]·keep(i)/(1-p), keep = backend.DropoutKeep(seed,
// i, p); p == 0 copies. Forward and backward are the same map (the
// backward recomputes the mask from the seed).
__device__ void dropout_body(float* out, const float* inp, long long n, double p, unsigned long long seed) {
    if (p <= 0.0) {
        GRID_STRIDE(i, n) { out[i] = inp[i]; }
        return;
    }
    unsigned int th = dropout_thresh(p);
    float s = 1.0f / (1.0f - (float)p);
    GRID_STRIDE(i, n) { out[i] = dropout_keep(seed, i, th) ? inp[i] * s : 0.0f; }
}
extern "C" __global__ void dropout_fwd_f32(float* out, const float* inp, long long n, double p, unsigned long long seed) {
    dropout_body(out, inp, n, p, seed);
}
extern "C" __global__ void dropout_bwd_f32(float* dinp, const float* dout, long long n, double p,
                                           unsigned long long seed) {
    dropout_body(dinp, dout, n, p, seed);
}

extern "C" __global__ void convert_f32_bf16(bf16* out, const float* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __float2bfloat16_rn(in[i]); }
}
extern "C" __global__ void convert_bf16_f32(float* out, const bf16* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __bfloat162float(in[i]); }
}
