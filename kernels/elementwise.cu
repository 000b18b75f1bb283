// elementwise.cu: pointwise ops, bias add and bias gradient, dropout,
// f32 <-> bf16 conversion. Suffixes: _<x> names the activation storage
// (f32 or bf16: every activation / activation-gradient argument of the
// kernel); _<x>_<w> adds the storage of the weight (bias). Arithmetic is
// fp32; a bf16 result is rounded once (nearest even). 1-D kernels use
// grid-stride loops, so any 1-D grid is correct.
#include "common.cuh"

template <class X, class W>
__device__ void bias_add_body(X* x, const W* bias, long long N, long long C) {
    GRID_STRIDE(i, N * C) { st(x + i, ld(x + i) + ld(bias + i % C)); }
}

// bias_grad: dbias[c] += Σ_n dout[n, c]. Block (32, 8) owns 32 columns:
// threadIdx.y walks rows y, y+8, ... in order, then the 8 partial sums are
// added in a fixed order, so the result is deterministic. grid ceil(C/32).
// (cb: the block's column block; tx, ty: the thread as in block (32, 8).)
template <class X>
__device__ void bias_grad_cols(float* dbias, const X* dout, long long N, long long C, long long cb, int tx, int ty) {
    __shared__ float part[8][33];
    long long c = cb * 32 + tx;
    float s = 0.0f;
    if (c < C)
        for (long long n = ty; n < N; n += 8) s += ld(dout + n * C + c);
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && c < C) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += part[k][tx];
        dbias[c] += t;
    }
}

template <class X>
__device__ void bias_grad_body(float* dbias, const X* dout, long long N, long long C) {
    bias_grad_cols(dbias, dout, N, C, blockIdx.x, threadIdx.x, threadIdx.y);
}

// bias_grad2: two bias gradients over the same N rows in one launch, the
// adapter backward's dBUp += Σ dout (N, C1) (storage X) and dBDown += Σ dz
// (N, C2) (float): block (32, 8), grid ceil(C1/32) + ceil(C2/32); each
// column block sums exactly as bias_grad does.
template <class X>
__device__ void bias_grad2_body(float* db1, const X* d1, long long C1, float* db2, const float* d2, long long C2,
                                long long N) {
    long long b1 = (C1 + 31) / 32;
    if ((long long)blockIdx.x < b1)
        bias_grad_cols(db1, d1, N, C1, blockIdx.x, threadIdx.x, threadIdx.y);
    else
        bias_grad_cols(db2, d2, N, C2, (long long)blockIdx.x - b1, threadIdx.x, threadIdx.y);
}

template <class X>
__device__ void add_body(X* out, const X* a, const X* b, long long n) {
    GRID_STRIDE(i, n) { st(out + i, ld(a + i) + ld(b + i)); }
}

template <class X>
__device__ void scale_body(X* x, double alpha, long long n) {
    float s = (float)alpha;
    GRID_STRIDE(i, n) { st(x + i, ld(x + i) * s); }
}

// act_fwd: out = act(inp); act_bwd: dinp = dout·act'(inp) (common.cuh's
// act_f, act_grad_f). The output (and its gradient) and the saved input are
// stored independently (O, I), so the adapter fallback can keep act(z) and
// dz in float next to a bf16 z. out may alias inp, dinp may alias dout.
template <class O, class I>
__device__ void act_fwd_body(O* out, const I* inp, long long n, long long act) {
    GRID_STRIDE(i, n) { st(out + i, act_f(act, ld(inp + i))); }
}
template <class O, class I>
__device__ void act_bwd_body(O* dinp, const O* dout, const I* inp, long long n, long long act) {
    GRID_STRIDE(i, n) { st(dinp + i, ld(dout + i) * act_grad_f(act, ld(inp + i))); }
}
template <class X>
__device__ void tanh_fwd_body(X* out, const X* inp, long long n) {
    GRID_STRIDE(i, n) { st(out + i, tanhf(ld(inp + i))); }
}
template <class X>
__device__ void tanh_bwd_body(X* dinp, const X* dout, const X* out, long long n) {
    GRID_STRIDE(i, n) {
        float y = ld(out + i);
        st(dinp + i, ld(dout + i) * (1.0f - y * y));
    }
}

// dropout: out[i] = inp[i]·keep(i)/(1-p), keep = backend.DropoutKeep(seed,
// i, p); p == 0 copies. Forward and backward are the same map (the
// backward recomputes the mask from the seed).
template <class X>
__device__ void dropout_body(X* out, const X* inp, long long n, double p, unsigned long long seed) {
    if (p <= 0.0) {
        GRID_STRIDE(i, n) { out[i] = inp[i]; }
        return;
    }
    unsigned int th = dropout_thresh(p);
    float s = 1.0f / (1.0f - (float)p);
    GRID_STRIDE(i, n) { st(out + i, dropout_keep(seed, i, th) ? ld(inp + i) * s : 0.0f); }
}

#define EW_KERNELS(X, sfx)                                                                                          \
    extern "C" __global__ void bias_grad_##sfx(float* dbias, const X* dout, long long N, long long C) {            \
        bias_grad_body(dbias, dout, N, C);                                                                          \
    }                                                                                                               \
    extern "C" __global__ void bias_grad2_##sfx(float* db1, const X* d1, long long C1, float* db2, const float* d2, \
                                                long long C2, long long N) {                                        \
        bias_grad2_body(db1, d1, C1, db2, d2, C2, N);                                                               \
    }                                                                                                               \
    extern "C" __global__ void add_##sfx(X* out, const X* a, const X* b, long long n) { add_body(out, a, b, n); } \
    extern "C" __global__ void scale_##sfx(X* x, double alpha, long long n) { scale_body(x, alpha, n); }          \
    extern "C" __global__ void tanh_fwd_##sfx(X* out, const X* inp, long long n) { tanh_fwd_body(out, inp, n); }  \
    extern "C" __global__ void tanh_bwd_##sfx(X* dinp, const X* dout, const X* out, long long n) {                \
        tanh_bwd_body(dinp, dout, out, n);                                                                          \
    }                                                                                                               \
    extern "C" __global__ void dropout_fwd_##sfx(X* out, const X* inp, long long n, double p,                      \
                                                 unsigned long long seed) {                                         \
        dropout_body(out, inp, n, p, seed);                                                                         \
    }                                                                                                               \
    extern "C" __global__ void dropout_bwd_##sfx(X* dinp, const X* dout, long long n, double p,                    \
                                                 unsigned long long seed) {                                         \
        dropout_body(dinp, dout, n, p, seed);                                                                       \
    }
EW_KERNELS(float, f32)
EW_KERNELS(bf16, bf16)

#define BIAS_ADD_KERNEL(X, W, sfx)                                                                \
    extern "C" __global__ void bias_add_##sfx(X* x, const W* bias, long long N, long long C) { \
        bias_add_body(x, bias, N, C);                                                             \
    }
BIAS_ADD_KERNEL(float, float, f32_f32)
BIAS_ADD_KERNEL(float, bf16, f32_bf16)
BIAS_ADD_KERNEL(bf16, float, bf16_f32)
BIAS_ADD_KERNEL(bf16, bf16, bf16_bf16)

#define ACT_KERNELS(O, I, sfx)                                                                                 \
    extern "C" __global__ void act_fwd_##sfx(O* out, const I* inp, long long n, long long act) {            \
        act_fwd_body(out, inp, n, act);                                                                      \
    }                                                                                                        \
    extern "C" __global__ void act_bwd_##sfx(O* dinp, const O* dout, const I* inp, long long n, long long act) { \
        act_bwd_body(dinp, dout, inp, n, act);                                                               \
    }
ACT_KERNELS(float, float, f32_f32)
ACT_KERNELS(float, bf16, f32_bf16)
ACT_KERNELS(bf16, float, bf16_f32)
ACT_KERNELS(bf16, bf16, bf16_bf16)

extern "C" __global__ void convert_f32_bf16(bf16* out, const float* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __float2bfloat16_rn(in[i]); }
}
extern "C" __global__ void convert_bf16_f32(float* out, const bf16* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __bfloat162float(in[i]); }
}
