// attention.cu: fused masked scaled-dot-product self-attention, forward and
// backward, for T <= 512 and HS <= 128 (the launcher checks).
//
// qkv (B, T, 3C) holds Q, K, V side by side; head h uses columns
// h·HS..(h+1)·HS of each third (C = NH·HS). mask (B, T) is 1 for real tokens.
// probs (B, NH, T, T) is the softmax before dropout; dropout on it uses
// backend.DropoutKeep(seed, flat index of probs, p). A query whose keys are
// all masked gets zero probabilities and a zero output (as cpu).
//
// Geometry (fixed): grid (ceil(T/8), NH, B), block 256 = 8 warps; each warp
// owns one query row (forward, dQ) or one key row (dK, dV) of the block's 8.
// K, V, Q and dout stream through shared memory 32 rows at a time.
//
// Backward, with P̃ = dropout(P), dP = dropout(dout·Vᵀ), D_i = Σ_j P_ij dP_ij,
// dS = P ⊙ (dP - D), in three launches that need no scratch memory:
//   attn_bwd_d_f32   D_i, parked in dqkv's dQ slot [b, i, h·HS];
//   attn_bwd_dkv_f32 dV_j = Σ_i P̃_ij dout_i, dK_j = scale·Σ_i dS_ij Q_i;
//   attn_bwd_dq_f32  dQ_i = scale·Σ_j dS_ij K_j (reads its D_i first).
#include "common.cuh"

#define ATT_ROWS 8
#define ATT_TILE 32
#define ATT_TMAX 512
#define ATT_HSMAX 128

// att_load_tile copies rows r0..r0+32 (zero past T) of one third (col0 =
// 0, C or 2C, plus h·HS) of qkv-like storage into tile[32][HS+1].
template <class X>
__device__ __forceinline__ void att_load_tile(float (*tile)[ATT_HSMAX + 1], const X* base, long long ldx, long long r0,
                                              long long T, long long HS) {
    for (long long idx = threadIdx.x; idx < ATT_TILE * HS; idx += blockDim.x) {
        long long r = idx / HS, d = idx % HS;
        tile[r][d] = (r0 + r < T) ? ld(base + (r0 + r) * ldx + d) : 0.0f;
    }
}

// D_i is parked in the first element(s) of row i's dQ slot between the
// backward launches; bf16 storage splits the float's bits over two
// elements (the launcher requires HS >= 2), so D is not rounded.
__device__ __forceinline__ void att_park(float* p, float v) { p[0] = v; }
__device__ __forceinline__ float att_unpark(const float* p) { return p[0]; }
__device__ __forceinline__ void att_park(bf16* p, float v) {
    unsigned int u = __float_as_uint(v);
    p[0] = __ushort_as_bfloat16((unsigned short)(u >> 16));
    p[1] = __ushort_as_bfloat16((unsigned short)(u & 0xffffu));
}
__device__ __forceinline__ float att_unpark(const bf16* p) {
    unsigned int u = ((unsigned int)__bfloat16_as_ushort(p[0]) << 16) | __bfloat16_as_ushort(p[1]);
    return __uint_as_float(u);
}

// att_keep_scale is keep/(1-p) for element idx of probs (1 when p == 0).
__device__ __forceinline__ float att_keep_scale(long long idx, double p, unsigned long long seed) {
    if (p <= 0.0) return 1.0f;
    return dropout_keep(seed, idx, dropout_thresh(p)) ? 1.0f / (1.0f - (float)p) : 0.0f;
}

template <class X>
__device__ void attn_fwd_body(X* out, X* probs, const X* qkv, const int* mask, long long B, long long T, long long NH,
                              long long HS, double p, unsigned long long seed) {
    __shared__ float Qs[ATT_ROWS][ATT_HSMAX];
    __shared__ float S[ATT_ROWS][ATT_TMAX];
    __shared__ float KV[ATT_TILE][ATT_HSMAX + 1];
    const long long b = blockIdx.z, h = blockIdx.y, C = NH * HS, C3 = 3 * C;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long i0 = (long long)blockIdx.x * ATT_ROWS, i = i0 + w;
    const bool valid = i < T;
    const float scale = rsqrtf((float)HS);
    const X* base = qkv + b * T * C3 + h * HS;

    for (long long idx = threadIdx.x; idx < ATT_ROWS * HS; idx += blockDim.x) {
        long long r = idx / HS, d = idx % HS;
        Qs[r][d] = (i0 + r < T) ? ld(base + (i0 + r) * C3 + d) : 0.0f;
    }
    // Scores S = Q·Kᵀ·scale, masked keys -inf.
    for (long long j0 = 0; j0 < T; j0 += ATT_TILE) {
        __syncthreads();  // Qs loaded / previous tile consumed
        att_load_tile(KV, base + C, C3, j0, T, HS);
        __syncthreads();
        long long j = j0 + lane;
        if (valid && j < T) {
            float s = 0.0f;
            for (long long d = 0; d < HS; d++) s += Qs[w][d] * KV[lane][d];
            S[w][j] = mask[b * T + j] != 0 ? s * scale : -INFINITY;
        }
    }
    __syncwarp();
    // Row softmax (each warp its own row).
    X* prow = probs + ((b * NH + h) * T + i) * T;
    if (valid) {
        float mx = -INFINITY;
        for (long long j = lane; j < T; j += 32) mx = fmaxf(mx, S[w][j]);
        mx = warp_max(mx);
        if (mx == -INFINITY) {
            for (long long j = lane; j < T; j += 32) {
                S[w][j] = 0.0f;
                st(prow + j, 0.0f);
            }
        } else {
            float sum = 0.0f;
            for (long long j = lane; j < T; j += 32) {
                float e = S[w][j] == -INFINITY ? 0.0f : expf(S[w][j] - mx);
                S[w][j] = e;
                sum += e;
            }
            float inv = 1.0f / warp_sum(sum);
            long long flat = ((b * NH + h) * T + i) * T;
            for (long long j = lane; j < T; j += 32) {
                // The output uses the probabilities as stored, so that the
                // backward (which reads them back) sees the same P.
                float pr = S[w][j] * inv;
                st(prow + j, pr);
                pr = ld(prow + j);
                S[w][j] = pr * att_keep_scale(flat + j, p, seed);
            }
        }
    }
    // out = P̃·V.
    float acc[ATT_HSMAX / 32];
    for (int q = 0; q < ATT_HSMAX / 32; q++) acc[q] = 0.0f;
    for (long long j0 = 0; j0 < T; j0 += ATT_TILE) {
        __syncthreads();  // S rows written / previous tile consumed
        att_load_tile(KV, base + 2 * C, C3, j0, T, HS);
        __syncthreads();
        if (valid) {
            long long jn = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
            for (long long jr = 0; jr < jn; jr++) {
                float pr = S[w][j0 + jr];
                for (int q = 0; q < ATT_HSMAX / 32; q++) {
                    long long d = lane + 32 * q;
                    if (d < HS) acc[q] += pr * KV[jr][d];
                }
            }
        }
    }
    if (valid) {
        X* o = out + (b * T + i) * C + h * HS;
        for (int q = 0; q < ATT_HSMAX / 32; q++) {
            long long d = lane + 32 * q;
            if (d < HS) st(o + d, acc[q]);
        }
    }
}

// att_dp_row computes, for the block's query rows (Gs holds their dout), row
// w's dP[j] = keep_scale·(dout_i·V_j) into Srow[j] for every key j, and
// returns Σ_j P_ij·dP_ij (D_i). All threads of the block must call it.
template <class X>
__device__ float att_dp_row(float (*Gs)[ATT_HSMAX], float* Srow, float (*KV)[ATT_HSMAX + 1], const X* base, const X* prow, long long flat, long long i, long long T, long long HS, long long C,
                            long long C3, double p, unsigned long long seed) {
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const bool valid = i < T;
    float D = 0.0f;
    for (long long j0 = 0; j0 < T; j0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(KV, base + 2 * C, C3, j0, T, HS);
        __syncthreads();
        long long j = j0 + lane;
        if (valid && j < T) {
            float s = 0.0f;
            for (long long d = 0; d < HS; d++) s += Gs[w][d] * KV[lane][d];
            float dp = s * att_keep_scale(flat + j, p, seed);
            Srow[j] = dp;
            D += ld(prow + j) * dp;
        }
    }
    return warp_sum(D);
}

// att_load_dout loads the block's 8 rows of dout (head h) into Gs.
template <class X>
__device__ __forceinline__ void att_load_dout(float (*Gs)[ATT_HSMAX], const X* dout, long long b, long long h,
                                              long long i0, long long T, long long HS, long long C) {
    for (long long idx = threadIdx.x; idx < ATT_ROWS * HS; idx += blockDim.x) {
        long long r = idx / HS, d = idx % HS;
        Gs[r][d] = (i0 + r < T) ? ld(dout + (b * T + i0 + r) * C + h * HS + d) : 0.0f;
    }
}

template <class X>
__device__ void attn_bwd_d_body(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B, long long T,
                                long long NH, long long HS, double p, unsigned long long seed) {
    __shared__ float Gs[ATT_ROWS][ATT_HSMAX];
    __shared__ float S[ATT_ROWS][ATT_TMAX];
    __shared__ float KV[ATT_TILE][ATT_HSMAX + 1];
    const long long b = blockIdx.z, h = blockIdx.y, C = NH * HS, C3 = 3 * C;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long i0 = (long long)blockIdx.x * ATT_ROWS, i = i0 + w;
    const long long flat = ((b * NH + h) * T + i) * T;
    att_load_dout(Gs, dout, b, h, i0, T, HS, C);
    float D = att_dp_row(Gs, S[w], KV, qkv + b * T * C3 + h * HS, probs + flat, flat, i, T, HS, C, C3, p, seed);
    if (i < T && lane == 0) att_park(dqkv + (b * T + i) * C3 + h * HS, D);
}

template <class X>
__device__ void attn_bwd_dq_body(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B, long long T,
                                 long long NH, long long HS, double p, unsigned long long seed) {
    __shared__ float Gs[ATT_ROWS][ATT_HSMAX];
    __shared__ float S[ATT_ROWS][ATT_TMAX];
    __shared__ float KV[ATT_TILE][ATT_HSMAX + 1];
    const long long b = blockIdx.z, h = blockIdx.y, C = NH * HS, C3 = 3 * C;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long i0 = (long long)blockIdx.x * ATT_ROWS, i = i0 + w;
    const bool valid = i < T;
    const long long flat = ((b * NH + h) * T + i) * T;
    const X* base = qkv + b * T * C3 + h * HS;
    X* dq = dqkv + (b * T + i) * C3 + h * HS;
    // D_i was parked in dQ's first element by attn_bwd_d_f32; only this warp
    // reads or writes row i's dQ, and it reads first.
    float D = valid ? att_unpark(dq) : 0.0f;
    att_load_dout(Gs, dout, b, h, i0, T, HS, C);
    att_dp_row(Gs, S[w], KV, base, probs + flat, flat, i, T, HS, C, C3, p, seed);
    if (valid)
        for (long long j = lane; j < T; j += 32) S[w][j] = ld(probs + flat + j) * (S[w][j] - D);
    __syncwarp();
    float acc[ATT_HSMAX / 32];
    for (int q = 0; q < ATT_HSMAX / 32; q++) acc[q] = 0.0f;
    for (long long j0 = 0; j0 < T; j0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(KV, base + C, C3, j0, T, HS);
        __syncthreads();
        if (valid) {
            long long jn = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
            for (long long jr = 0; jr < jn; jr++) {
                float ds = S[w][j0 + jr];
                for (int q = 0; q < ATT_HSMAX / 32; q++) {
                    long long d = lane + 32 * q;
                    if (d < HS) acc[q] += ds * KV[jr][d];
                }
            }
        }
    }
    const float scale = rsqrtf((float)HS);
    if (valid)
        for (int q = 0; q < ATT_HSMAX / 32; q++) {
            long long d = lane + 32 * q;
            if (d < HS) st(dq + d, scale * acc[q]);
        }
}

template <class X>
__device__ void attn_bwd_dkv_body(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B, long long T,
                                  long long NH, long long HS, double p, unsigned long long seed) {
    __shared__ float Vj[ATT_ROWS][ATT_HSMAX];
    __shared__ float G[ATT_TILE][ATT_HSMAX + 1];
    __shared__ float Qt[ATT_TILE][ATT_HSMAX + 1];
    __shared__ float Dt[ATT_TILE];
    __shared__ float Pt[ATT_TILE][ATT_ROWS + 1];  // P[q0+r][j0+c], loaded row-contiguously
    __shared__ float pdv[ATT_ROWS][ATT_TILE], dsv[ATT_ROWS][ATT_TILE];
    const long long b = blockIdx.z, h = blockIdx.y, C = NH * HS, C3 = 3 * C;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long j0 = (long long)blockIdx.x * ATT_ROWS, j = j0 + w;
    const bool valid = j < T;
    const X* base = qkv + b * T * C3 + h * HS;
    const long long bh = b * NH + h;
    for (long long idx = threadIdx.x; idx < ATT_ROWS * HS; idx += blockDim.x) {
        long long r = idx / HS, d = idx % HS;
        Vj[r][d] = (j0 + r < T) ? ld(base + (j0 + r) * C3 + 2 * C + d) : 0.0f;
    }
    float accV[ATT_HSMAX / 32], accK[ATT_HSMAX / 32];
    for (int q = 0; q < ATT_HSMAX / 32; q++) accV[q] = accK[q] = 0.0f;
    for (long long q0 = 0; q0 < T; q0 += ATT_TILE) {
        __syncthreads();
        // Query tile: dout rows, Q rows and their D.
        for (long long idx = threadIdx.x; idx < ATT_TILE * HS; idx += blockDim.x) {
            long long r = idx / HS, d = idx % HS;
            bool in = q0 + r < T;
            G[r][d] = in ? ld(dout + (b * T + q0 + r) * C + h * HS + d) : 0.0f;
            Qt[r][d] = in ? ld(base + (q0 + r) * C3 + d) : 0.0f;
        }
        for (long long r = threadIdx.x; r < ATT_TILE; r += blockDim.x)
            Dt[r] = (q0 + r < T) ? att_unpark(dqkv + (b * T + q0 + r) * C3 + h * HS) : 0.0f;
        // probs for (query tile) x (this block's keys): 8 consecutive threads
        // read 8 consecutive keys of one query row, instead of each lane
        // reading a different row.
        for (int idx = threadIdx.x; idx < ATT_TILE * ATT_ROWS; idx += blockDim.x) {
            int r = idx / ATT_ROWS, c = idx % ATT_ROWS;
            Pt[r][c] = (q0 + r < T && j0 + c < T) ? ld(probs + (bh * T + q0 + r) * T + j0 + c) : 0.0f;
        }
        __syncthreads();
        // Lane = query q0+lane: P̃_ij and dS_ij for this warp's key j.
        long long i = q0 + lane;
        float pd = 0.0f, ds = 0.0f;
        if (valid && i < T) {
            float s = 0.0f;
            for (long long d = 0; d < HS; d++) s += G[lane][d] * Vj[w][d];
            long long idx = (bh * T + i) * T + j;
            float ks = att_keep_scale(idx, p, seed);
            float P = Pt[lane][w];
            pd = P * ks;
            ds = P * (s * ks - Dt[lane]);
        }
        pdv[w][lane] = pd;
        dsv[w][lane] = ds;
        __syncwarp();
        if (valid)
            for (int r = 0; r < ATT_TILE; r++) {
                float a = pdv[w][r], c = dsv[w][r];
                for (int q = 0; q < ATT_HSMAX / 32; q++) {
                    long long d = lane + 32 * q;
                    if (d < HS) {
                        accV[q] += a * G[r][d];
                        accK[q] += c * Qt[r][d];
                    }
                }
            }
        __syncwarp();
    }
    const float scale = rsqrtf((float)HS);
    if (valid) {
        X* dk = dqkv + (b * T + j) * C3 + C + h * HS;
        X* dv = dk + C;
        for (int q = 0; q < ATT_HSMAX / 32; q++) {
            long long d = lane + 32 * q;
            if (d < HS) {
                st(dk + d, scale * accK[q]);
                st(dv + d, accV[q]);
            }
        }
    }
}

// Suffix: storage of qkv, out, probs, dout and dqkv (f32 or bf16).
#define ATT_KERNELS(X, sfx)                                                                                          \
    extern "C" __global__ void attn_fwd_##sfx(X* out, X* probs, const X* qkv, const int* mask, long long B,          \
                                              long long T, long long NH, long long HS, double p,                     \
                                              unsigned long long seed) {                                             \
        attn_fwd_body(out, probs, qkv, mask, B, T, NH, HS, p, seed);                                                 \
    }                                                                                                                \
    extern "C" __global__ void attn_bwd_d_##sfx(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B,   \
                                                long long T, long long NH, long long HS, double p,                   \
                                                unsigned long long seed) {                                           \
        attn_bwd_d_body(dqkv, dout, qkv, probs, B, T, NH, HS, p, seed);                                              \
    }                                                                                                                \
    extern "C" __global__ void attn_bwd_dkv_##sfx(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B, \
                                                  long long T, long long NH, long long HS, double p,                 \
                                                  unsigned long long seed) {                                         \
        attn_bwd_dkv_body(dqkv, dout, qkv, probs, B, T, NH, HS, p, seed);                                            \
    }                                                                                                                \
    extern "C" __global__ void attn_bwd_dq_##sfx(X* dqkv, const X* dout, const X* qkv, const X* probs, long long B,  \
                                                 long long T, long long NH, long long HS, double p,                  \
                                                 unsigned long long seed) {                                          \
        attn_bwd_dq_body(dqkv, dout, qkv, probs, B, T, NH, HS, p, seed);                                             \
    }
ATT_KERNELS(float, f32)
ATT_KERNELS(bf16, bf16)
