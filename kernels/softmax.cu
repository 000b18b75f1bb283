// softmax.cu: the masked row softmax the attention fallback is built from
// (backend.MaskedSoftmaxForward/Backward), forward and backward.
//
// Forward: for every row r of scores (B, R, T), probs[b, r, :] =
// softmax(scale·scores[b, r, :]) over the keys t with mask[b, t] != 0;
// masked keys get 0 and a row with no unmasked key all zeros (as the fused
// attention and cpu). Backward: dscores = scale·P ⊙ (dP - Σ_t P·dP) over N
// rows of length T.
//
// Geometry: one warp per row, 8 rows per block (block 256), grid
// ceil(rows/8); lanes stride over the keys and reduce with shuffles (fixed
// order: deterministic). Each lane writes only the keys it read, after the
// row's reductions, so probs may alias scores and dscores dprobs.
//
// Suffixes: masked_softmax_fwd_<p>_<s> (probs, scores) and
// masked_softmax_bwd_<d>_<p> (dscores and dprobs, probs), each f32 or bf16.
#include "common.cuh"

#define SM_ROWS 8

template <class P, class S>
__device__ void masked_softmax_fwd_body(P* probs, const S* scores, const int* mask, long long B, long long R,
                                        long long T, double scale_d) {
    const long long row = (long long)blockIdx.x * SM_ROWS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= B * R) return;  // the whole warp: the shuffles below stay full
    const float scale = (float)scale_d;
    const int* mk = mask + (row / R) * T;
    const S* s = scores + row * T;
    P* p = probs + row * T;
    float mx = -INFINITY;
    for (long long j = lane; j < T; j += 32)
        if (mk[j] != 0) mx = fmaxf(mx, scale * ld(s + j));
    mx = warp_max(mx);
    if (mx == -INFINITY) {
        for (long long j = lane; j < T; j += 32) st(p + j, 0.0f);
        return;
    }
    float sum = 0.0f;
    for (long long j = lane; j < T; j += 32)
        if (mk[j] != 0) sum += expf(scale * ld(s + j) - mx);
    const float inv = 1.0f / warp_sum(sum);
    for (long long j = lane; j < T; j += 32) st(p + j, mk[j] != 0 ? expf(scale * ld(s + j) - mx) * inv : 0.0f);
}

template <class D, class P>
__device__ void masked_softmax_bwd_body(D* dscores, const D* dprobs, const P* probs, long long N, long long T,
                                        double scale_d) {
    const long long row = (long long)blockIdx.x * SM_ROWS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= N) return;  // the whole warp
    const float scale = (float)scale_d;
    const P* p = probs + row * T;
    const D* dp = dprobs + row * T;
    D* ds = dscores + row * T;
    float dot = 0.0f;
    for (long long j = lane; j < T; j += 32) dot += ld(p + j) * ld(dp + j);
    dot = warp_sum(dot);
    for (long long j = lane; j < T; j += 32) st(ds + j, scale * (ld(p + j) * (ld(dp + j) - dot)));
}

#define SM_KERNELS(A, Z, sfx)                                                                                     \
    extern "C" __global__ void masked_softmax_fwd_##sfx(A* probs, const Z* scores, const int* mask, long long B, \
                                                        long long R, long long T, double scale) {              \
        masked_softmax_fwd_body(probs, scores, mask, B, R, T, scale);                                           \
    }                                                                                                           \
    extern "C" __global__ void masked_softmax_bwd_##sfx(A* dscores, const A* dprobs, const Z* probs, long long N, \
                                                        long long T, double scale) {                            \
        masked_softmax_bwd_body(dscores, dprobs, probs, N, T, scale);                                           \
    }
SM_KERNELS(float, float, f32_f32)
SM_KERNELS(float, bf16, f32_bf16)
SM_KERNELS(bf16, float, bf16_f32)
SM_KERNELS(bf16, bf16, bf16_bf16)
