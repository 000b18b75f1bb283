// adamw.cu: one fused AdamW step (Loshchilov & Hutter; as torch.optim.AdamW
// and cpu.AdamWStep) over every element of an arena in one launch:
//   m = β1·m + (1-β1)·g,  v = β2·v + (1-β2)·g²
//   param -= lr·(wd_i·param + (m/bc1) / (√(v/bc2) + eps))
// with bc1 = 1-β1ᵗ, bc2 = 1-β2ᵗ computed on the host (float32, as cpu does),
// and wd_i = wd for the elements inside one of the npairs ranges
// [decay[2k], decay[2k+1]) (ascending, not overlapping; the launcher checks
// the table), 0 elsewhere. decay may be null when npairs is 0.
#include "common.cuh"

// adamw_decays reports whether element i lies in a decay range: a binary
// search for the last range starting at or before i. The table has one
// range per decayed tensor (a few hundred at most) and is read through the
// read-only cache; the 32 consecutive indices of a warp take (nearly) the
// same path, so each step is a broadcast load.
__device__ __forceinline__ bool adamw_decays(const int* __restrict__ decay, long long npairs, long long i) {
    long long lo = 0, hi = npairs;  // ranges [0, lo) start at or before i, [hi, npairs) after it
    while (lo < hi) {
        long long mid = (lo + hi) / 2;
        if (__ldg(decay + 2 * mid) <= i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && i < __ldg(decay + 2 * (lo - 1) + 1);
}

extern "C" __global__ void adamw_f32(float* param, const float* grad, float* m, float* v, const int* decay,
                                     long long npairs, long long n, double lr_d, double beta1_d, double beta2_d,
                                     double eps_d, double wd_d, double bc1_d, double bc2_d) {
    const float lr = (float)lr_d, b1 = (float)beta1_d, b2 = (float)beta2_d, eps = (float)eps_d, wd = (float)wd_d;
    const float bc1 = (float)bc1_d, bc2 = (float)bc2_d;
    GRID_STRIDE(i, n) {
        const float wdi = adamw_decays(decay, npairs, i) ? wd : 0.0f;
        float g = grad[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (wdi * param[i] + mhat / (sqrtf(vhat) + eps));
    }
}
