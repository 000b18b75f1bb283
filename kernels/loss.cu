// loss.cu: softmax cross-entropy with ignored labels, and MSE. Losses are
// float; logits / dlogits and pred / target / dpred are stored as the
// suffix says (f32 or bf16). Arithmetic is fp32.
#include "common.cuh"

// softmax_xent: one block (256 threads) per row of logits (N, V).
// loss[n] = logsumexp(x) - x[y]; dlogits (may be null) = scale·(softmax -
// onehot); it may alias logits. label < 0: zero loss and gradient; label
// >= V (the launcher rejects it first): NaN loss and gradient.
template <class X>
__device__ void softmax_xent_body(float* loss, X* dlogits, const X* logits, const int* labels, long long N, long long V,
                                  double scale_d) {
    __shared__ float scratch[32];
    long long n = blockIdx.x;
    if (n >= N) return;  // whole block
    const X* x = logits + n * V;
    X* d = dlogits ? dlogits + n * V : nullptr;
    int y = labels[n];
    float scale = (float)scale_d;
    if (y < 0 || y >= V) {
        float v = y < 0 ? 0.0f : NAN;
        if (threadIdx.x == 0) loss[n] = v;
        if (d)
            for (long long j = threadIdx.x; j < V; j += blockDim.x) st(d + j, v);
        return;
    }
    // Read x[y] before the barriers in block_max/block_sum: dlogits may
    // alias logits, and the last loop overwrites it.
    const float xy = ld(x + y);
    float mx = -INFINITY;
    for (long long j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, ld(x + j));
    mx = block_max(mx, scratch);
    float s = 0.0f;
    for (long long j = threadIdx.x; j < V; j += blockDim.x) s += expf(ld(x + j) - mx);
    s = block_sum(s, scratch);
    float lse = mx + logf(s);
    if (threadIdx.x == 0) loss[n] = lse - xy;
    if (d)
        for (long long j = threadIdx.x; j < V; j += blockDim.x)
            st(d + j, scale * (expf(ld(x + j) - lse) - (j == y ? 1.0f : 0.0f)));
}

// mse: loss = (pred-target)², dpred (may be null) = scale·2·(pred-target).
template <class X, class Y>
__device__ void mse_body(float* loss, X* dpred, const X* pred, const Y* target, long long N, double scale_d) {
    float scale = (float)scale_d;
    GRID_STRIDE(i, N) {
        float d = ld(pred + i) - ld(target + i);
        loss[i] = d * d;
        if (dpred) st(dpred + i, scale * 2.0f * d);
    }
}

#define LOSS_KERNELS(X, sfx)                                                                                         \
    extern "C" __global__ void softmax_xent_##sfx(float* loss, X* dlogits, const X* logits, const int* labels,      \
                                                  long long N, long long V, double scale) {                          \
        softmax_xent_body(loss, dlogits, logits, labels, N, V, scale);                                               \
    }
LOSS_KERNELS(float, f32)
LOSS_KERNELS(bf16, bf16)

// mse_<x>_<y>: x = storage of pred and dpred, y = storage of target.
#define MSE_KERNEL(X, Y, sfx)                                                                                   \
    extern "C" __global__ void mse_##sfx(float* loss, X* dpred, const X* pred, const Y* target, long long N,   \
                                         double scale) {                                                        \
        mse_body(loss, dpred, pred, target, N, scale);                                                          \
    }
MSE_KERNEL(float, float, f32_f32)
MSE_KERNEL(float, bf16, f32_bf16)
MSE_KERNEL(bf16, float, bf16_f32)
MSE_KERNEL(bf16, bf16, bf16_bf16)
