// layernorm.cu: LayerNorm over rows of inp (N, C), one warp per row
// (block 128 = 4 rows, grid ceil(N/4)), two-pass mean and variance in fp32.
//   forward:  out = (inp-mean)·rstd·w + b, saving mean and rstd (N)
//   backward: dinp (=) = rstd·(g - mean(g) - x̂·mean(g·x̂)), g = dout·w;
//             dw += Σ_n dout·x̂, db += Σ_n dout (either may be null).
// dinp may alias dout: every lane reads the elements it then writes.
// The weight-gradient kernel must run before the dinp kernel in that case.
#include "common.cuh"

// layernorm_row normalises row n (one warp, all lanes call it) and returns
// its mean and rstd; the plain and the grouped forward share it, so they
// agree bit for bit.
template <class X, class W>
__device__ void layernorm_row(X* out, const X* inp, const W* w, const W* b, long long n, long long C, double eps,
                              int lane, float* mean, float* rstd) {
    const X* x = inp + n * C;
    float s = 0.0f;
    for (long long j = lane; j < C; j += 32) s += ld(x + j);
    float m = warp_sum(s) / (float)C;
    float ss = 0.0f;
    for (long long j = lane; j < C; j += 32) {
        float d = ld(x + j) - m;
        ss += d * d;
    }
    float r = rsqrtf(warp_sum(ss) / (float)C + (float)eps);
    X* o = out + n * C;
    for (long long j = lane; j < C; j += 32) st(o + j, (ld(x + j) - m) * r * ld(w + j) + ld(b + j));
    *mean = m;
    *rstd = r;
}

template <class X, class W>
__device__ void layernorm_fwd_body(X* out, float* mean, float* rstd, const X* inp, const W* w, const W* b,
                                   long long N, long long C, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;  // whole warps leave together
    float m, r;
    layernorm_row(out, inp, w, b, n, C, eps, lane, &m, &r);
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = r;
    }
}

// layernorm_seg_fwd_body: the grouped forward (backend.GroupedLayerNormForward,
// for serving): row n takes w and b (G, C) at the slot of its segment, found
// by bisection over the ends in segs (S, 3) = (start, end, slot). The
// statistics are not saved. out may alias inp (a lane reads each element
// before it writes it).
template <class X, class W>
__device__ void layernorm_seg_fwd_body(X* out, const X* inp, const W* w, const W* b, const int* segs, long long N,
                                       long long C, long long S, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    long long lo = 0, hi = S - 1;
    while (lo < hi) {
        long long mid = (lo + hi) / 2;
        if (segs[3 * mid + 1] > n)
            hi = mid;
        else
            lo = mid + 1;
    }
    long long g = segs[3 * lo + 2];
    float m, r;
    layernorm_row(out, inp, w + g * C, b + g * C, n, C, eps, lane, &m, &r);
}

template <class X, class W>
__device__ void layernorm_bwd_dx_body(X* dinp, const X* dout, const X* inp, const W* w, const float* mean,
                                      const float* rstd, long long N, long long C) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    const X* g = dout + n * C;
    const X* x = inp + n * C;
    float m = mean[n], r = rstd[n];
    float sg = 0.0f, sgx = 0.0f;
    for (long long j = lane; j < C; j += 32) {
        float gw = ld(g + j) * ld(w + j);
        sg += gw;
        sgx += gw * ((ld(x + j) - m) * r);
    }
    sg = warp_sum(sg) / (float)C;
    sgx = warp_sum(sgx) / (float)C;
    X* o = dinp + n * C;
    for (long long j = lane; j < C; j += 32) {
        float xh = (ld(x + j) - m) * r;
        st(o + j, r * (ld(g + j) * ld(w + j) - sg - xh * sgx));
    }
}

// layernorm_bwd_dwdb: block (32, 8) owns 32 columns; threadIdx.y walks
// rows y, y+8, ... in order and the 8 partials are added in a fixed order
// (deterministic). grid ceil(C/32).
template <class X>
__device__ void layernorm_bwd_dwdb_body(float* dw, float* db, const X* dout, const X* inp, const float* mean,
                                        const float* rstd, long long N, long long C) {
    __shared__ float pw[8][33], pb[8][33];
    long long c = (long long)blockIdx.x * 32 + threadIdx.x;
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (long long n = threadIdx.y; n < N; n += 8) {
            float d = ld(dout + n * C + c);
            sw += d * ((ld(inp + n * C + c) - mean[n]) * rstd[n]);
            sb += d;
        }
    pw[threadIdx.y][threadIdx.x] = sw;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int k = 0; k < 8; k++) {
            tw += pw[k][threadIdx.x];
            tb += pb[k][threadIdx.x];
        }
        if (dw) dw[c] += tw;
        if (db) db[c] += tb;
    }
}

// Suffixes: _<x>_<w> = storage of the activations (inp, out, dout, dinp)
// and of the weights (w, b); mean and rstd are float.
#define LN_KERNELS(X, W, sfx)                                                                                       \
    extern "C" __global__ void layernorm_fwd_##sfx(X* out, float* mean, float* rstd, const X* inp, const W* w,     \
                                                   const W* b, long long N, long long C, double eps) {             \
        layernorm_fwd_body(out, mean, rstd, inp, w, b, N, C, eps);                                                  \
    }                                                                                                               \
    extern "C" __global__ void layernorm_bwd_dx_##sfx(X* dinp, const X* dout, const X* inp, const W* w,            \
                                                      const float* mean, const float* rstd, long long N,           \
                                                      long long C) {                                                \
        layernorm_bwd_dx_body(dinp, dout, inp, w, mean, rstd, N, C);                                                \
    }                                                                                                               \
    extern "C" __global__ void layernorm_seg_fwd_##sfx(X* out, const X* inp, const W* w, const W* b,               \
                                                       const int* segs, long long N, long long C, long long S,     \
                                                       double eps) {                                                \
        layernorm_seg_fwd_body(out, inp, w, b, segs, N, C, S, eps);                                                 \
    }
LN_KERNELS(float, float, f32_f32)
LN_KERNELS(float, bf16, f32_bf16)
LN_KERNELS(bf16, float, bf16_f32)
LN_KERNELS(bf16, bf16, bf16_bf16)

// layernorm_bwd_dwdb_<x>: x = storage of dout and inp.
#define LN_DWDB_KERNEL(X, sfx)                                                                                      \
    extern "C" __global__ void layernorm_bwd_dwdb_##sfx(float* dw, float* db, const X* dout, const X* inp,         \
                                                        const float* mean, const float* rstd, long long N,         \
                                                        long long C) {                                              \
        layernorm_bwd_dwdb_body(dw, db, dout, inp, mean, rstd, N, C);                                               \
    }
LN_DWDB_KERNEL(float, f32)
LN_DWDB_KERNEL(bf16, bf16)
