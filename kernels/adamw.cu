// adamw.cu: one fused AdamW step (Loshchilov & Hutter; as torch.optim.AdamW
// and cpu.AdamWStep):
//   m = β1·m + (1-β1)·g,  v = β2·v + (1-β2)·g²
//   param -= lr·(wd·param + (m/bc1) / (√(v/bc2) + eps))
// with bc1 = 1-β1ᵗ, bc2 = 1-β2ᵗ computed on the host (float32, as cpu does).
#include "common.cuh"

extern "C" __global__ void adamw_f32(float* param, const float* grad, float* m, float* v, long long n, double lr_d,
                                     double beta1_d, double beta2_d, double eps_d, double wd_d, double bc1_d,
                                     double bc2_d) {
    const float lr = (float)lr_d, b1 = (float)beta1_d, b2 = (float)beta2_d, eps = (float)eps_d, wd = (float)wd_d;
    const float bc1 = (float)bc1_d, bc2 = (float)bc2_d;
    GRID_STRIDE(i, n) {
        float g = grad[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (wd * param[i] + mhat / (sqrtf(vhat) + eps));
    }
}
