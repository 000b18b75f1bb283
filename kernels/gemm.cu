// gemm.cu: C = alpha·op(A)·op(B) + beta·C, row-major, strided batch over
// blockIdx.z (see kernels/README.md). op(A) is M×K, op(B) is K×N, C is M×N
// float. beta == 0 ignores C's old contents, so NaN garbage cannot leak in.
// An optional epilogue (a dense layer's bias add and dropout, see
// GemmEpi) is applied to each element before it is stored.
//
// Two kernels:
//   gemm_f32_*  fp32 arithmetic (float32 mode and fp32 operands);
//   gemm_wmma_* tensor cores (WMMA bf16 16x16x16, fp32 accumulation); float
//               operands are rounded to bf16 (nearest even) on their way into
//               shared memory.
#include "common.cuh"

// element (r, c) of op(X), where X is stored row-major with leading dim ld.
template <class T>
__device__ __forceinline__ float gemm_op_at(const T* X, long long r, long long c, long long ldx, bool trans) {
    return trans ? ld(X + c * ldx + r) : ld(X + r * ldx + c);
}

// GemmEpi is the epilogue of a dense layer y = dropout(x·Wᵀ + bias): after
// alpha and beta, add bias[col] (float or bf16 storage; null: none), then
// keep the element with backend.DropoutKeep(seed, row·ldc + col, p) scaled
// by 1/(1-p), or zero it (drop false: no dropout). It is what bias_add and
// dropout_fwd of elementwise.cu do to a stored C, in the same fp32
// operations, without rounding a bf16 C in between; with ldc = N the
// dropout index is the flat index dropout_fwd would use (the launcher
// passes no dropout otherwise).
struct GemmEpi {
    const void* bias;
    bool biasBF16, drop;
    unsigned int thresh;
    float scale;
    unsigned long long seed;
};

__device__ __forceinline__ GemmEpi gemm_epi(const void* bias, long long biasBF16, double p, unsigned long long seed) {
    GemmEpi e;
    e.bias = bias;
    e.biasBF16 = biasBF16 != 0;
    e.drop = p > 0.0;
    e.thresh = e.drop ? dropout_thresh(p) : 0u;
    e.scale = e.drop ? 1.0f / (1.0f - (float)p) : 1.0f;
    e.seed = seed;
    return e;
}

template <class TC>
__device__ __forceinline__ void gemm_store(TC* C, long long ldc, long long r, long long c, float acc, float alpha, float beta,
                                           const GemmEpi& e) {
    TC* p = C + r * ldc + c;
    float v = beta == 0.0f ? alpha * acc : alpha * acc + beta * ld(p);
    if (e.bias) v = v + (e.biasBF16 ? ld(static_cast<const bf16*>(e.bias) + c) : ld(static_cast<const float*>(e.bias) + c));
    if (e.drop) v = dropout_keep(e.seed, r * ldc + c, e.thresh) ? v * e.scale : 0.0f;
    st(p, v);
}

// ------------------------------------------------------------- fp32 tiled
//
// 64x64 output tile per block of 16x16 threads; thread (tx, ty) owns rows
// ty+16i and columns tx+16j (i, j < 4), which keeps shared-memory reads
// conflict-free. K advances 16 at a time through shared memory.
#define GF_BM 64
#define GF_BN 64
#define GF_BK 16

template <class TC, class TA, class TB>
__device__ void gemm_f32_body(TC* C, const TA* A, const TB* B, long long M, long long N, long long K, long long transA,
                              long long transB, long long lda, long long ldb, long long ldc, long long strideA,
                              long long strideB, long long strideC, double alpha_d, double beta_d, GemmEpi epi) {
    __shared__ float As[GF_BK][GF_BM + 4];
    __shared__ float Bs[GF_BK][GF_BN + 4];
    const float alpha = (float)alpha_d, beta = (float)beta_d;
    const long long z = blockIdx.z;
    A += z * strideA;
    B += z * strideB;
    C += z * strideC;
    const long long m0 = (long long)blockIdx.y * GF_BM, n0 = (long long)blockIdx.x * GF_BN;
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (long long k0 = 0; k0 < K; k0 += GF_BK) {
        // A tile (64 x 16): read along the contiguous direction of storage.
        for (int r = 0; r < 4; r++) {
            int idx = tid + 256 * r, m, k;
            if (transA) {
                k = idx / GF_BM;
                m = idx % GF_BM;
            } else {
                m = idx / GF_BK;
                k = idx % GF_BK;
            }
            long long gm = m0 + m, gk = k0 + k;
            As[k][m] = (gm < M && gk < K) ? gemm_op_at(A, gm, gk, lda, transA != 0) : 0.0f;
        }
        // B tile (16 x 64).
        for (int r = 0; r < 4; r++) {
            int idx = tid + 256 * r, k, n;
            if (transB) {
                n = idx / GF_BK;
                k = idx % GF_BK;
            } else {
                k = idx / GF_BN;
                n = idx % GF_BN;
            }
            long long gk = k0 + k, gn = n0 + n;
            Bs[k][n] = (gk < K && gn < N) ? gemm_op_at(B, gk, gn, ldb, transB != 0) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < GF_BK; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        long long r = m0 + ty + 16 * i;
        if (r >= M) continue;
        for (int j = 0; j < 4; j++) {
            long long c = n0 + tx + 16 * j;
            if (c < N) gemm_store(C, ldc, r, c, acc[i][j], alpha, beta, epi);
        }
    }
}

#define GEMM_ARGS                                                                                              \
    long long M, long long N, long long K, long long transA, long long transB, long long lda, long long ldb, \
        long long ldc, long long strideA, long long strideB, long long strideC, double alpha, double beta
#define GEMM_PASS M, N, K, transA, transB, lda, ldb, ldc, strideA, strideB, strideC, alpha, beta
// The epilogue's arguments (GemmEpi): bias (null: none), whether it is
// bf16, the dropout probability (0: none) and seed.
#define GEMM_EPI_ARGS const void *bias, long long biasBF16, double p, unsigned long long seed

// ------------------------------------------------------------- WMMA bf16
//
// 64x64 output tile per block of 4 warps (2x2), each warp 32x32 = 2x2
// fragments of 16x16; K advances 32 at a time. Shared tiles are padded by 8
// bf16 (16 bytes) per row against bank conflicts while keeping every
// fragment pointer 32-byte aligned and ldm a multiple of 8, as WMMA requires.
#define GW_BM 64
#define GW_BN 64
#define GW_BK 32
#define GW_LDA (GW_BK + 8)
#define GW_LDB (GW_BN + 8)
#define GW_LDC (GW_BN + 4)

template <class TC, class TA, class TB>
__device__ void gemm_wmma_body(TC* C, const TA* A, const TB* B, long long M, long long N, long long K, long long transA,
                               long long transB, long long lda, long long ldb, long long ldc, long long strideA,
                               long long strideB, long long strideC, double alpha_d, double beta_d, GemmEpi epi) {
    using namespace nvcuda;
    __shared__ __align__(32) bf16 As[GW_BM * GW_LDA];  // op(A) tile, row-major (m, k)
    __shared__ __align__(32) bf16 Bs[GW_BK * GW_LDB];  // op(B) tile, row-major (k, n)
    __shared__ __align__(32) float Cs[GW_BM * GW_LDC];
    const float alpha = (float)alpha_d, beta = (float)beta_d;
    const long long z = blockIdx.z;
    A += z * strideA;
    B += z * strideB;
    C += z * strideC;
    const long long m0 = (long long)blockIdx.y * GW_BM, n0 = (long long)blockIdx.x * GW_BN;
    const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (long long k0 = 0; k0 < K; k0 += GW_BK) {
        for (int r = 0; r < (GW_BM * GW_BK) / 128; r++) {
            int idx = tid + 128 * r, m, k;
            if (transA) {
                k = idx / GW_BM;
                m = idx % GW_BM;
            } else {
                m = idx / GW_BK;
                k = idx % GW_BK;
            }
            long long gm = m0 + m, gk = k0 + k;
            float v = (gm < M && gk < K) ? gemm_op_at(A, gm, gk, lda, transA != 0) : 0.0f;
            As[m * GW_LDA + k] = __float2bfloat16_rn(v);
        }
        for (int r = 0; r < (GW_BK * GW_BN) / 128; r++) {
            int idx = tid + 128 * r, k, n;
            if (transB) {
                n = idx / GW_BK;
                k = idx % GW_BK;
            } else {
                k = idx / GW_BN;
                n = idx % GW_BN;
            }
            long long gk = k0 + k, gn = n0 + n;
            float v = (gk < K && gn < N) ? gemm_op_at(B, gk, gn, ldb, transB != 0) : 0.0f;
            Bs[k * GW_LDB + n] = __float2bfloat16_rn(v);
        }
        __syncthreads();
        for (int kk = 0; kk < GW_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * GW_LDA + kk, GW_LDA);
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], Bs + kk * GW_LDB + wn * 32 + j * 16, GW_LDB);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * GW_LDC + wn * 32 + j * 16, acc[i][j], GW_LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int idx = tid; idx < GW_BM * GW_BN; idx += 128) {
        int m = idx / GW_BN, n = idx % GW_BN;
        long long r = m0 + m, c = n0 + n;
        if (r < M && c < N) gemm_store(C, ldc, r, c, Cs[m * GW_LDC + n], alpha, beta, epi);
    }
}

// Suffix letters: storage of A, B, C (f float, b bf16).
#define GEMM_KERNELS(TA, TB, TC, sfx)                                                                   \
    extern "C" __global__ void gemm_f32_##sfx(TC* C, const TA* A, const TB* B, GEMM_ARGS, GEMM_EPI_ARGS) {  \
        gemm_f32_body(C, A, B, GEMM_PASS, gemm_epi(bias, biasBF16, p, seed));                               \
    }                                                                                                         \
    extern "C" __global__ void gemm_wmma_##sfx(TC* C, const TA* A, const TB* B, GEMM_ARGS, GEMM_EPI_ARGS) { \
        gemm_wmma_body(C, A, B, GEMM_PASS, gemm_epi(bias, biasBF16, p, seed));                              \
    }
GEMM_KERNELS(float, float, float, fff)
GEMM_KERNELS(float, float, bf16, ffb)
GEMM_KERNELS(float, bf16, float, fbf)
GEMM_KERNELS(float, bf16, bf16, fbb)
GEMM_KERNELS(bf16, float, float, bff)
GEMM_KERNELS(bf16, float, bf16, bfb)
GEMM_KERNELS(bf16, bf16, float, bbf)
GEMM_KERNELS(bf16, bf16, bf16, bbb)

// gemm_f32_ff: the first published name of gemm_f32_fff (float A, B, C),
// without the epilogue's arguments, kept because cuda/device_test.go
// launches it.
extern "C" __global__ void gemm_f32_ff(float* C, const float* A, const float* B, GEMM_ARGS) {
    gemm_f32_body(C, A, B, GEMM_PASS, gemm_epi(nullptr, 0, 0.0, 0));
}
