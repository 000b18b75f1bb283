// layernorm.cu: LayerNorm over rows of inp (N, C), one warp per row
// (block 128 = 4 rows, grid ceil(N/4)), two-pass mean and variance in fp32.
//   forward:  out = (inp-mean)·rstd·w + b, saving mean and rstd (N)
//   backward: dinp (=) = rstd·(g - mean(g) - x̂·mean(g·x̂)), g = dout·w;
//             dw += Σ_n dout·x̂, db += Σ_n dout (either may be null).
// dinp may alias dout: every lane reads the elements it then writes.
// The weight-gradient kernel must run before the dinp kernel in that case.
#include "common.cuh"

template <class W>
__device__ void layernorm_fwd_body(float* out, float* mean, float* rstd, const float* inp, const W* w, const W* b,
                                   long long N, long long C, double eps) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;  // whole warps leave together
    const float* x = inp + n * C;
    float s = 0.0f;
    for (long long j = lane; j < C; j += 32) s += x[j];
    float m = warp_sum(s) / (float)C;
    float ss = 0.0f;
    for (long long j = lane; j < C; j += 32) {
        float d = x[j] - m;
        ss += d * d;
    }
    float r = rsqrtf(warp_sum(ss) / (float)C + (float)eps);
    float* o = out + n * C;
    for (long long j = lane; j < C; j += 32) o[j] = (x[j] - m) * r * ld(w + j) + ld(b + j);
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = r;
    }
}
extern "C" __global__ void layernorm_fwd_f32(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                             const float* b, long long N, long long C, double eps) {
    layernorm_fwd_body(out, mean, rstd, inp, w, b, N, C, eps);
}
extern "C" __global__ void layernorm_fwd_bf16(float* out, float* mean, float* rstd, const float* inp, const bf16* w,
                                              const bf16* b, long long N, long long C, double eps) {
    layernorm_fwd_body(out, mean, rstd, inp, w, b, N, C, eps);
}

template <class W>
__device__ void layernorm_bwd_dx_body(float* dinp, const float* dout, const float* inp, const W* w, const float* mean,
                                      const float* rstd, long long N, long long C) {
    long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    const float* g = dout + n * C;
    const float* x = inp + n * C;
    float m = mean[n], r = rstd[n];
    float sg = 0.0f, sgx = 0.0f;
    for (long long j = lane; j < C; j += 32) {
        float gw = g[j] * ld(w + j);
        sg += gw;
        sgx += gw * ((x[j] - m) * r);
    }
    sg = warp_sum(sg) / (float)C;
    sgx = warp_sum(sgx) / (float)C;
    float* o = dinp + n * C;
    for (long long j = lane; j < C; j += 32) {
        float xh = (x[j] - m) * r;
        o[j] = r * (g[j] * ld(w + j) - sg - xh * sgx);
    }
}
extern "C" __global__ void layernorm_bwd_dx_f32(float* dinp, const float* dout, const float* inp, const float* w,
                                                const float* mean, const float* rstd, long long N, long long C) {
    layernorm_bwd_dx_body(dinp, dout, inp, w, mean, rstd, N, C);
}
extern "C" __global__ void layernorm_bwd_dx_bf16(float* dinp, const float* dout, const float* inp, const bf16* w,
                                                 const float* mean, const float* rstd, long long N, long long C) {
    layernorm_bwd_dx_body(dinp, dout, inp, w, mean, rstd, N, C);
}

// layernorm_bwd_dwdb_f32: block (32, 8) owns 32 columns; threadIdx.y walks
// rows y, y+8, ... in order and the 8 partials are added in a fixed order
// (deterministic). grid ceil(C/32).
extern "C" __global__ void layernorm_bwd_dwdb_f32(float* dw, float* db, const float* dout, const float* inp,
                                                  const float* mean, const float* rstd, long long N, long long C) {
    __shared__ float pw[8][33], pb[8][33];
    long long c = (long long)blockIdx.x * 32 + threadIdx.x;
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (long long n = threadIdx.y; n < N; n += 8) {
            float d = dout[n * C + c];
            sw += d * ((inp[n * C + c] - mean[n]) * rstd[n]);
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
