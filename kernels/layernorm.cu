// layernorm.cu: LayerNorm over rows of inp (N, C), one warp per row
// (block 128 = 4 rows, grid ceil(N/4)), two-pass mean and variance in fp32.
//   forward:  out = (inp-mean)·rstd·w + b, saving mean and rstd (N)
//   add_layernorm_fwd: res = a + b (stored, rounded to its storage), then
//             the forward on res as stored: the residual add and the
//             LayerNorm after it in one launch, bit for bit add + forward
//   backward: dinp (=) = rstd·(g - mean(g) - x̂·mean(g·x̂)), g = dout·w;
//             dw += Σ_n dout·x̂, db += Σ_n dout (either may be null).
// dinp may alias dout: every lane reads the elements it then writes.
// The weight-gradient kernel must run before the dinp kernel in that case.
// layernorm_bwd_fused runs both in one launch (block 256: blocks below rowBlocks
// do 8 rows of dinp each, the others 32 columns of dw/db each), for dinp
// not overlapping dout; each part computes exactly what its own kernel
// does.
#include "common.cuh"

// layernorm_row normalises row n of inp with one warp (lane 0..31); mean
// and rstd may be null (the grouped forward saves no statistics).
template <class X, class W>
__device__ void layernorm_row(X* out, float* mean, float* rstd, const X* inp, const W* w, const W* b, long long n,
                              int lane, long long C, double eps) {
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
    if (lane == 0 && mean) {
        mean[n] = m;
        rstd[n] = r;
    }
}

template <class X, class W>
__device__ void layernorm_fwd_body(X* out, float* mean, float* rstd, const X* inp, const W* w, const W* b,
                                   long long N, long long C, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    layernorm_row(out, mean, rstd, inp, w, b, n, threadIdx.x % 32, C, eps);
}

// layernorm_seg_fwd_body: the grouped forward (backend.GroupedLayerNormForward,
// for serving): row n takes w and b (G, C) at the slot of its segment, found
// by bisection over the ends in segs (S, 3) = (start, end, slot), through
// layernorm_row as layernorm_fwd (so bit for bit its result with those
// parameters). The statistics are not saved. out may alias inp (a lane
// reads each element before it writes it).
template <class X, class W>
__device__ void layernorm_seg_fwd_body(X* out, const X* inp, const W* w, const W* b, const int* segs, long long N,
                                       long long C, long long S, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    long long lo = 0, hi = S - 1;
    while (lo < hi) {
        long long mid = (lo + hi) / 2;
        if (segs[3 * mid + 1] > n)
            hi = mid;
        else
            lo = mid + 1;
    }
    long long g = segs[3 * lo + 2];
    layernorm_row(out, (float*)0, (float*)0, inp, w + g * C, b + g * C, n, threadIdx.x % 32, C, eps);
}

// add_layernorm_fwd: res = a + b (res may alias a or b: each lane reads the
// elements it writes), then row n of res, as stored, through layernorm_row,
// whose lanes read back exactly the elements they wrote.
template <class X, class W>
__device__ void add_layernorm_fwd_body(X* out, X* res, float* mean, float* rstd, const X* a, const X* bb,
                                       const W* w, const W* b, long long N, long long C, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    for (long long j = lane; j < C; j += 32) st(res + n * C + j, ld(a + n * C + j) + ld(bb + n * C + j));
    layernorm_row(out, mean, rstd, res, w, b, n, lane, C, eps);
}

// layernorm_bwd_row writes row n of dinp with one warp.
template <class X, class W>
__device__ void layernorm_bwd_row(X* dinp, const X* dout, const X* inp, const W* w, const float* mean,
                                  const float* rstd, long long n, int lane, long long C) {
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

template <class X, class W>
__device__ void layernorm_bwd_dx_body(X* dinp, const X* dout, const X* inp, const W* w, const float* mean,
                                      const float* rstd, long long N, long long C) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return;
    layernorm_bwd_row(dinp, dout, inp, w, mean, rstd, n, threadIdx.x % 32, C);
}

// layernorm_bwd_dwdb: block (32, 8) owns 32 columns; threadIdx.y walks
// rows y, y+8, ... in order and the 8 partials are added in a fixed order
// (deterministic). grid ceil(C/32).
// (cb: the block's column block; tx, ty: the thread as in block (32, 8).)
template <class X>
__device__ void layernorm_dwdb_cols(float* dw, float* db, const X* dout, const X* inp, const float* mean,
                                    const float* rstd, long long N, long long C, long long cb, int tx, int ty) {
    __shared__ float pw[8][33], pb[8][33];
    long long c = cb * 32 + tx;
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (long long n = ty; n < N; n += 8) {
            float d = ld(dout + n * C + c);
            sw += d * ((ld(inp + n * C + c) - mean[n]) * rstd[n]);
            sb += d;
        }
    pw[ty][tx] = sw;
    pb[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int k = 0; k < 8; k++) {
            tw += pw[k][tx];
            tb += pb[k][tx];
        }
        if (dw) dw[c] += tw;
        if (db) db[c] += tb;
    }
}

template <class X>
__device__ void layernorm_bwd_dwdb_body(float* dw, float* db, const X* dout, const X* inp, const float* mean,
                                        const float* rstd, long long N, long long C) {
    layernorm_dwdb_cols(dw, db, dout, inp, mean, rstd, N, C, blockIdx.x, threadIdx.x, threadIdx.y);
}

// layernorm_bwd_fused: dinp and dw/db in one launch, block 256, grid
// rowBlocks + ceil(C/32) with rowBlocks = ceil(N/8) (rowBlocks 0 when
// dinp is null; dw and db both null: no column blocks). dinp must not
// overlap dout. Every thread of a block takes the same branch, so the
// column blocks' barrier is the block's.
template <class X, class W>
__device__ void layernorm_bwd_fused_body(X* dinp, float* dw, float* db, const X* dout, const X* inp, const W* w,
                                   const float* mean, const float* rstd, long long N, long long C,
                                   long long rowBlocks) {
    if ((long long)blockIdx.x < rowBlocks) {
        long long n = (long long)blockIdx.x * 8 + threadIdx.x / 32;
        if (n < N) layernorm_bwd_row(dinp, dout, inp, w, mean, rstd, n, threadIdx.x % 32, C);
        return;
    }
    layernorm_dwdb_cols(dw, db, dout, inp, mean, rstd, N, C, (long long)blockIdx.x - rowBlocks, threadIdx.x % 32,
                        threadIdx.x / 32);
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
    extern "C" __global__ void add_layernorm_fwd_##sfx(X* out, X* res, float* mean, float* rstd, const X* a,       \
                                                       const X* bb, const W* w, const W* b, long long N,            \
                                                       long long C, double eps) {                                   \
        add_layernorm_fwd_body(out, res, mean, rstd, a, bb, w, b, N, C, eps);                                       \
    }                                                                                                               \
    extern "C" __global__ void layernorm_bwd_fused_##sfx(X* dinp, float* dw, float* db, const X* dout,             \
                                                         const X* inp, const W* w, const float* mean,              \
                                                         const float* rstd, long long N, long long C,              \
                                                         long long rowBlocks) {                                     \
        layernorm_bwd_fused_body(dinp, dw, db, dout, inp, w, mean, rstd, N, C, rowBlocks);                          \
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
