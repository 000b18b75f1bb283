// loss.cu: softmax cross-entropy with ignored labels, and MSE.
#include "common.cuh"

// softmax_xent_f32: one block (256 threads) per row of logits (N, V).
// loss[n] = logsumexp(x) - x[y]; dlogits (may be null) = scale·(softmax -
// onehot). label < 0: zero loss and gradient; label >= V: NaN loss and
// gradient (the host cannot return an error without a device sync).
extern "C" __global__ void softmax_xent_f32(float* loss, float* dlogits, const float* logits, const int* labels,
                                            long long N, long long V, double scale_d) {
    __shared__ float scratch[32];
    long long n = blockIdx.x;
    if (n >= N) return;
    const float* x = logits + n * V;
    float* d = dlogits ? dlogits + n * V : nullptr;
    int y = labels[n];
    float scale = (float)scale_d;
    if (y < 0) {
        if (threadIdx.x == 0) loss[n] = 0.0f;
        if (d)
            for (long long j = threadIdx.x; j < V; j += blockDim.x) d[j] = 0.0f;
        return;
    }
    if (y >= V) {
        if (threadIdx.x == 0) loss[n] = NAN;
        if (d)
            for (long long j = threadIdx.x; j < V; j += blockDim.x) d[j] = NAN;
        return;
    }
    float mx = -INFINITY;
    for (long long j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = block_max(mx, scratch);
    float s = 0.0f;
    for (long long j = threadIdx.x; j < V; j += blockDim.x) s += expf(x[j] - mx);
    s = block_sum(s, scratch);
    float lse = mx + logf(s);
    if (threadIdx.x == 0) loss[n] = lse - x[y];
    if (d)
        for (long long j = threadIdx.x; j < V; j += blockDim.x) d[j] = scale * (expf(x[j] - lse) - (j == y ? 1.0f : 0.0f));
}

// mse_f32: loss = (pred-target)², dpred (may be null) = scale·2·(pred-target).
extern "C" __global__ void mse_f32(float* loss, float* dpred, const float* pred, const float* target, long long N,
                                   double scale_d) {
    float scale = (float)scale_d;
    GRID_STRIDE(i, N) {
        float d = pred[i] - target[i];
        loss[i] = d * d;
        if (dpred) dpred[i] = scale * 2.0f * d;
    }
}
