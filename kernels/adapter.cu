// adapter.cu: the fused Houlsby bottleneck on inp (N, C), M <= 256:
//   z   = inp·wDownᵀ + bDown        (N, M), saved for the backward
//   out = inp + act(z)·wUpᵀ + bUp   (N, C)
// wDown (M, C), bDown (M), wUp (C, M), bUp (C); act 0 relu, 1 gelu (exact
// erf), 2 swish (backend.Act). ReLU'(0) = 0 as in PyTorch.
//
// Geometry (fixed): block 256 threads, 8 rows per block, grid ceil(N/8).
// The bottleneck rows (8, M) stay in shared memory between the two
// projections; the weights stream through shared memory 32 columns at a
// time. out may alias inp (a block reads all its rows before writing any).
//
// Backward: adapter_bwd computes a = act(z) (for dWUp), dz = (dout·wUp) ⊙
// act'(z) and dinp = dout + dz·wDown in one kernel; the launcher then
// accumulates the weight gradients with the GEMM and bias-grad kernels
// (deterministic, no atomics). The nonlinearities are common.cuh's act_f
// and act_grad_f.
#include "common.cuh"

#define AD_ROWS 8
#define AD_MMAX 256
#define AD_CT 32

// ad_up computes, for the block's rows, res[r] = Σ_m A[r][m]·W[c][m] for
// column c = c0 + threadIdx.x, where W (C, M) is row-major (wUp, or wDown
// read transposed when trans: W[c][m] = wDown[m][c]). All threads call it.
template <class W>
__device__ void ad_rowmat(float res[AD_ROWS], float (*A)[AD_MMAX], float (*Ws)[AD_CT + 1], const W* w, long long c0,
                          long long C, long long M, bool trans) {
    for (int r = 0; r < AD_ROWS; r++) res[r] = 0.0f;
    const int t = threadIdx.x;
    for (long long m0 = 0; m0 < M; m0 += AD_CT) {
        __syncthreads();
        for (int idx = t; idx < 256 * AD_CT; idx += blockDim.x) {
            int cc, mm;
            float v = 0.0f;
            if (trans) {  // wDown (M, C): consecutive threads read consecutive c
                mm = idx / 256;
                cc = idx % 256;
                if (c0 + cc < C && m0 + mm < M) v = ld(w + (m0 + mm) * C + c0 + cc);
            } else {  // wUp (C, M): consecutive threads read consecutive m
                cc = idx / AD_CT;
                mm = idx % AD_CT;
                if (c0 + cc < C && m0 + mm < M) v = ld(w + (c0 + cc) * M + m0 + mm);
            }
            Ws[cc][mm] = v;
        }
        __syncthreads();
        long long mn = M - m0 < AD_CT ? M - m0 : AD_CT;
        for (long long mm = 0; mm < mn; mm++) {
            float wv = Ws[t][mm];
            for (int r = 0; r < AD_ROWS; r++) res[r] += A[r][m0 + mm] * wv;
        }
    }
}

// ad_down computes res[r] = Σ_c X[r][c]·W[m][c] for m = threadIdx.x (< M),
// X the block's rows of x (N, C), W (M, C) row-major (wDown), or W[m][c] =
// wUp[c][m] when trans. All threads call it.
template <class X, class W>
__device__ void ad_rowvec(float res[AD_ROWS], float (*Xs)[AD_CT], float (*Ws)[AD_CT + 1], const X* x, const W* w,
                          long long n0, long long N, long long C, long long M, bool trans) {
    for (int r = 0; r < AD_ROWS; r++) res[r] = 0.0f;
    const int t = threadIdx.x;
    for (long long c0 = 0; c0 < C; c0 += AD_CT) {
        __syncthreads();
        for (int idx = t; idx < AD_ROWS * AD_CT; idx += blockDim.x) {
            int r = idx / AD_CT, c = idx % AD_CT;
            Xs[r][c] = (n0 + r < N && c0 + c < C) ? ld(x + (n0 + r) * C + c0 + c) : 0.0f;
        }
        for (long long idx = t; idx < M * AD_CT; idx += blockDim.x) {
            long long m, c;
            float v = 0.0f;
            if (trans) {  // wUp (C, M): consecutive threads read consecutive m
                c = idx / M;
                m = idx % M;
                if (c0 + c < C) v = ld(w + (c0 + c) * M + m);
            } else {  // wDown (M, C)
                m = idx / AD_CT;
                c = idx % AD_CT;
                if (c0 + c < C) v = ld(w + m * C + c0 + c);
            }
            Ws[m][c] = v;
        }
        __syncthreads();
        if (t < M) {
            long long cn = C - c0 < AD_CT ? C - c0 : AD_CT;
            for (long long c = 0; c < cn; c++) {
                float wv = Ws[t][c];
                for (int r = 0; r < AD_ROWS; r++) res[r] += Xs[r][c] * wv;
            }
        }
    }
}

template <class X, class W>
__device__ void adapter_fwd_body(X* out, X* z, const X* inp, const W* wDown, const W* bDown, const W* wUp,
                                 const W* bUp, long long N, long long C, long long M, long long act) {
    __shared__ float Xs[AD_ROWS][AD_CT];
    __shared__ float Ws[256][AD_CT + 1];
    __shared__ float A[AD_ROWS][AD_MMAX];
    const int t = threadIdx.x;
    const long long n0 = (long long)blockIdx.x * AD_ROWS;
    float acc[AD_ROWS];
    ad_rowvec(acc, Xs, Ws, inp, wDown, n0, N, C, M, false);
    if (t < M) {
        float bd = ld(bDown + t);
        for (int r = 0; r < AD_ROWS; r++) {
            float zz = acc[r] + bd;
            // The backward reads z as stored; use the same value here.
            if (n0 + r < N) {
                st(z + (n0 + r) * M + t, zz);
                zz = ld(z + (n0 + r) * M + t);
            }
            A[r][t] = act_f(act, zz);
        }
    }
    // ad_rowmat starts with a barrier, which publishes A.
    for (long long c0 = 0; c0 < C; c0 += 256) {
        ad_rowmat(acc, A, Ws, wUp, c0, C, M, false);
        long long c = c0 + t;
        if (c < C) {
            float bu = ld(bUp + c);
            for (int r = 0; r < AD_ROWS; r++)
                if (n0 + r < N) st(out + (n0 + r) * C + c, ld(inp + (n0 + r) * C + c) + acc[r] + bu);
        }
    }
}

template <class X, class W>
__device__ void adapter_bwd_body(X* dinp, float* dz, float* a, const X* dout, const X* z, const W* wDown,
                                 const W* wUp, long long N, long long C, long long M, long long act) {
    __shared__ float Xs[AD_ROWS][AD_CT];
    __shared__ float Ws[256][AD_CT + 1];
    __shared__ float D[AD_ROWS][AD_MMAX];
    const int t = threadIdx.x;
    const long long n0 = (long long)blockIdx.x * AD_ROWS;
    float acc[AD_ROWS];
    ad_rowvec(acc, Xs, Ws, dout, wUp, n0, N, C, M, true);  // da = dout·wUp
    if (t < M)
        for (int r = 0; r < AD_ROWS; r++) {
            float dd = 0.0f;
            if (n0 + r < N) {
                float zz = ld(z + (n0 + r) * M + t);
                dd = acc[r] * act_grad_f(act, zz);
                dz[(n0 + r) * M + t] = dd;
                if (a) a[(n0 + r) * M + t] = act_f(act, zz);
            }
            D[r][t] = dd;
        }
    if (!dinp) return;  // uniform over the block
    for (long long c0 = 0; c0 < C; c0 += 256) {
        ad_rowmat(acc, D, Ws, wDown, c0, C, M, true);  // dz·wDown
        long long c = c0 + t;
        if (c < C)
            for (int r = 0; r < AD_ROWS; r++)
                if (n0 + r < N) st(dinp + (n0 + r) * C + c, ld(dout + (n0 + r) * C + c) + acc[r]);
    }
}

// as_stored rounds v as storing it in a tensor of p's type would.
__device__ __forceinline__ float as_stored(const float*, float v) { return v; }
__device__ __forceinline__ float as_stored(const bf16*, float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// adapter_seg_fwd_body: the grouped adapter (backend.GroupedAdapterForward),
// forward only, for serving several tasks in one batch. segs (S, 3) I32
// holds (start, end, slot) per segment. grid (ceil(maxRows/8), S), block
// 256: block (x, s) takes rows start + 8x .. of segment s, so the 8 rows
// of a block share one slot's weights, which stream through shared memory
// as in adapter_fwd. Slot -1 copies the rows (nothing to do when out ==
// inp). z is not saved; it is rounded as adapter_fwd stores it, so every
// row's result equals adapter_fwd's with the same weights bit for bit.
template <class X, class W>
__device__ void adapter_seg_fwd_body(X* out, const X* inp, const W* wDown, const W* bDown, const W* wUp,
                                     const W* bUp, const int* segs, long long C, long long M, long long act) {
    __shared__ float Xs[AD_ROWS][AD_CT];
    __shared__ float Ws[256][AD_CT + 1];
    __shared__ float A[AD_ROWS][AD_MMAX];
    const int t = threadIdx.x;
    const long long s = blockIdx.y;
    const long long end = segs[3 * s + 1], g = segs[3 * s + 2];
    const long long n0 = segs[3 * s] + (long long)blockIdx.x * AD_ROWS;
    if (n0 >= end) return;  // uniform over the block
    if (g < 0) {
        if ((const X*)out != inp)
            for (long long idx = t; idx < AD_ROWS * C; idx += blockDim.x) {
                long long r = idx / C, c = idx % C;
                if (n0 + r < end) st(out + (n0 + r) * C + c, ld(inp + (n0 + r) * C + c));
            }
        return;
    }
    wDown += g * M * C;
    bDown += g * M;
    wUp += g * C * M;
    bUp += g * C;
    float acc[AD_ROWS];
    ad_rowvec(acc, Xs, Ws, inp, wDown, n0, end, C, M, false);
    if (t < M) {
        float bd = ld(bDown + t);
        for (int r = 0; r < AD_ROWS; r++) A[r][t] = act_f(act, as_stored(inp, acc[r] + bd));
    }
    for (long long c0 = 0; c0 < C; c0 += 256) {
        ad_rowmat(acc, A, Ws, wUp, c0, C, M, false);
        long long c = c0 + t;
        if (c < C) {
            float bu = ld(bUp + c);
            for (int r = 0; r < AD_ROWS; r++)
                if (n0 + r < end) st(out + (n0 + r) * C + c, ld(inp + (n0 + r) * C + c) + acc[r] + bu);
        }
    }
}

// Suffixes: _<x>_<w> = storage of the activations (inp, out, z, dout, dinp)
// and of the four adapter tensors; dz and a are float (launcher scratch).
#define AD_KERNELS(X, W, sfx)                                                                                         \
    extern "C" __global__ void adapter_fwd_##sfx(X* out, X* z, const X* inp, const W* wDown, const W* bDown,         \
                                                 const W* wUp, const W* bUp, long long N, long long C, long long M,  \
                                                 long long act) {                                                    \
        adapter_fwd_body(out, z, inp, wDown, bDown, wUp, bUp, N, C, M, act);                                         \
    }                                                                                                                \
    extern "C" __global__ void adapter_bwd_##sfx(X* dinp, float* dz, float* a, const X* dout, const X* z,            \
                                                 const W* wDown, const W* wUp, long long N, long long C, long long M, \
                                                 long long act) {                                                    \
        adapter_bwd_body(dinp, dz, a, dout, z, wDown, wUp, N, C, M, act);                                            \
    }                                                                                                                \
    extern "C" __global__ void adapter_seg_fwd_##sfx(X* out, const X* inp, const W* wDown, const W* bDown,           \
                                                     const W* wUp, const W* bUp, const int* segs, long long C,       \
                                                     long long M, long long act) {                                   \
        adapter_seg_fwd_body(out, inp, wDown, bDown, wUp, bUp, segs, C, M, act);                                     \
    }
AD_KERNELS(float, float, f32_f32)
AD_KERNELS(float, bf16, f32_bf16)
AD_KERNELS(bf16, float, bf16_f32)
AD_KERNELS(bf16, bf16, bf16_bf16)
