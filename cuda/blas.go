//go:build cuda

package cuda

// cuBLAS, loaded at run time with dlopen, for benchmarks only: it gives the
// GEMM kernels of kernels/gemm.cu a yardstick on the same GPU without making
// the project link against (or depend on) cuBLAS.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*blas_create_t)(void**);
typedef int (*blas_destroy_t)(void*);
typedef int (*blas_setstream_t)(void*, void*);
typedef int (*blas_gemmex_t)(void*, int, int, int, int, int, const void*, const void*, int, int,
                             const void*, int, int, const void*, void*, int, int, int, int);

static void* blas_lib;
static blas_create_t blas_create_p;
static blas_destroy_t blas_destroy_p;
static blas_setstream_t blas_setstream_p;
static blas_gemmex_t blas_gemmex_p;

// blas_load opens the first cuBLAS it finds; NULL on success, else a message.
static const char* blas_load(void) {
	static const char* names[] = {"libcublas.so", "libcublas.so.12", "libcublas.so.11", NULL};
	if (blas_lib) return NULL;
	for (int i = 0; names[i] && !blas_lib; i++) blas_lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!blas_lib) return "dlopen libcublas.so{,.12,.11} failed";
	blas_create_p = (blas_create_t)dlsym(blas_lib, "cublasCreate_v2");
	blas_destroy_p = (blas_destroy_t)dlsym(blas_lib, "cublasDestroy_v2");
	blas_setstream_p = (blas_setstream_t)dlsym(blas_lib, "cublasSetStream_v2");
	blas_gemmex_p = (blas_gemmex_t)dlsym(blas_lib, "cublasGemmEx");
	if (!blas_create_p || !blas_destroy_p || !blas_setstream_p || !blas_gemmex_p) return "cuBLAS lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx";
	return NULL;
}

static int blas_create(void** h) { return blas_create_p(h); }
static int blas_destroy(void* h) { return blas_destroy_p(h); }
static int blas_setstream(void* h, void* s) { return blas_setstream_p(h, s); }

// Column-major cublasGemmEx with host alpha/beta, CUBLAS_COMPUTE_32F (68)
// and CUBLAS_GEMM_DEFAULT (-1).
static int blas_gemm(void* h, int ta, int tb, int m, int n, int k, float alpha,
                     unsigned long long A, int atype, int lda, unsigned long long B, int btype, int ldb,
                     float beta, unsigned long long C, int ctype, int ldc) {
	return blas_gemmex_p(h, ta, tb, m, n, k, &alpha, (const void*)A, atype, lda, (const void*)B, btype, ldb,
	                     &beta, (void*)C, ctype, ldc, 68, -1);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// cuBLAS enum values (cublas_api.h, library_types.h).
const (
	blasOpN   = 0  // CUBLAS_OP_N
	blasOpT   = 1  // CUBLAS_OP_T
	blasR32F  = 0  // CUDA_R_32F
	blasR16BF = 14 // CUDA_R_16BF
)

// BLAS is a cuBLAS handle bound to a Device's context and stream.
type BLAS struct {
	d *Device
	h unsafe.Pointer
}

// OpenBLAS loads cuBLAS and creates a handle on d's stream.
func OpenBLAS(d *Device) (*BLAS, error) {
	bl := &BLAS{d: d}
	err := d.do(func() error {
		if msg := C.blas_load(); msg != nil {
			return fmt.Errorf("%s", C.GoString(msg))
		}
		var h unsafe.Pointer
		if st := C.blas_create(&h); st != 0 {
			return fmt.Errorf("cublasCreate: status %d", int(st))
		}
		if st := C.blas_setstream(h, unsafe.Pointer(d.stream.C())); st != 0 {
			C.blas_destroy(h)
			return fmt.Errorf("cublasSetStream: status %d", int(st))
		}
		bl.h = h
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cuda.OpenBLAS: %w", err)
	}
	return bl, nil
}

// Close destroys the handle.
func (bl *BLAS) Close() error {
	return bl.d.do(func() error {
		if st := C.blas_destroy(bl.h); st != 0 {
			return fmt.Errorf("cublasDestroy: status %d", int(st))
		}
		return nil
	})
}

// GemmBF16F32 queues the row-major c (M×N, float32) = alpha·op(a)·op(b) +
// beta·c with bf16 a and b, tightly packed, as backend.MatMul describes.
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS
// gets B first, with the row-major leading dimensions.
func (bl *BLAS) GemmBF16F32(c, a, b uint64, transA, transB bool, M, N, K int, alpha, beta float32) error {
	opB, ldb := blasOpN, N
	if transB {
		opB, ldb = blasOpT, K
	}
	opA, lda := blasOpN, K
	if transA {
		opA, lda = blasOpT, M
	}
	return bl.d.do(func() error {
		st := C.blas_gemm(bl.h, C.int(opB), C.int(opA), C.int(N), C.int(M), C.int(K), C.float(alpha),
			C.ulonglong(b), blasR16BF, C.int(ldb), C.ulonglong(a), blasR16BF, C.int(lda),
			C.float(beta), C.ulonglong(c), blasR32F, C.int(N))
		if st != 0 {
			return fmt.Errorf("cublasGemmEx M=%d N=%d K=%d: status %d", M, N, K, int(st))
		}
		return nil
	})
}
