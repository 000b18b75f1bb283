//go:build amd64 && !purego

#include "textflag.h"

// SGEMM micro-kernels (contract: gemmKernel.fn in gemm_blocked.go).
// Packed A panel: mr floats per k step; packed B panel: nr floats per k step.
// Go operand order: VFMADD231PS src2, src1, dst computes dst += src1*src2.

// ---------------------------------------------------------------- AVX2 6×16
// Registers: CX k counter, SI A panel, DI B panel, DX C, R8 ldc in bytes,
// Y0-Y1 one row of B (16 floats), Y2-Y3 broadcasts of A, Y4-Y15 the 6×16
// accumulator tile (row r in Y(4+2r), Y(5+2r)).

#define AVX2_STEP(ao, bo) \
	VMOVUPS      bo(DI), Y0;          \
	VMOVUPS      bo+32(DI), Y1;       \
	VBROADCASTSS ao(SI), Y2;          \
	VFMADD231PS  Y0, Y2, Y4;          \
	VFMADD231PS  Y1, Y2, Y5;          \
	VBROADCASTSS ao+4(SI), Y3;        \
	VFMADD231PS  Y0, Y3, Y6;          \
	VFMADD231PS  Y1, Y3, Y7;          \
	VBROADCASTSS ao+8(SI), Y2;        \
	VFMADD231PS  Y0, Y2, Y8;          \
	VFMADD231PS  Y1, Y2, Y9;          \
	VBROADCASTSS ao+12(SI), Y3;       \
	VFMADD231PS  Y0, Y3, Y10;         \
	VFMADD231PS  Y1, Y3, Y11;         \
	VBROADCASTSS ao+16(SI), Y2;       \
	VFMADD231PS  Y0, Y2, Y12;         \
	VFMADD231PS  Y1, Y2, Y13;         \
	VBROADCASTSS ao+20(SI), Y3;       \
	VFMADD231PS  Y0, Y3, Y14;         \
	VFMADD231PS  Y1, Y3, Y15

#define AVX2_ROW_BETA(r0, r1) \
	VFMADD231PS (R9), Y1, r0;   \
	VFMADD231PS 32(R9), Y1, r1; \
	VMOVUPS     r0, (R9);       \
	VMOVUPS     r1, 32(R9);     \
	ADDQ        R8, R9

#define AVX2_ROW_STORE(r0, r1) \
	VMOVUPS r0, (R9);   \
	VMOVUPS r1, 32(R9); \
	ADDQ    R8, R9

// func sgemmKernelAVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX2(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	// Bring the C tile towards L1 while the k loop runs.
	MOVQ DX, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)

	MOVQ CX, BX
	SHRQ $2, BX
	ANDQ $3, CX
	TESTQ BX, BX
	JZ   avx2_tail

avx2_loop4:
	AVX2_STEP(0, 0)
	AVX2_STEP(24, 64)
	AVX2_STEP(48, 128)
	AVX2_STEP(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  avx2_loop4

avx2_tail:
	TESTQ CX, CX
	JZ    avx2_epilogue

avx2_loop1:
	AVX2_STEP(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  avx2_loop1

avx2_epilogue:
	VBROADCASTSS alpha+40(FP), Y0
	VMULPS Y0, Y4, Y4
	VMULPS Y0, Y5, Y5
	VMULPS Y0, Y6, Y6
	VMULPS Y0, Y7, Y7
	VMULPS Y0, Y8, Y8
	VMULPS Y0, Y9, Y9
	VMULPS Y0, Y10, Y10
	VMULPS Y0, Y11, Y11
	VMULPS Y0, Y12, Y12
	VMULPS Y0, Y13, Y13
	VMULPS Y0, Y14, Y14
	VMULPS Y0, Y15, Y15
	MOVQ DX, R9

	// beta == ±0: C is not read (BLAS rule; NaNs in C must not leak).
	MOVL  beta+44(FP), AX
	TESTL $0x7fffffff, AX
	JZ    avx2_store

	VBROADCASTSS beta+44(FP), Y1
	AVX2_ROW_BETA(Y4, Y5)
	AVX2_ROW_BETA(Y6, Y7)
	AVX2_ROW_BETA(Y8, Y9)
	AVX2_ROW_BETA(Y10, Y11)
	AVX2_ROW_BETA(Y12, Y13)
	AVX2_ROW_BETA(Y14, Y15)
	VZEROUPPER
	RET

avx2_store:
	AVX2_ROW_STORE(Y4, Y5)
	AVX2_ROW_STORE(Y6, Y7)
	AVX2_ROW_STORE(Y8, Y9)
	AVX2_ROW_STORE(Y10, Y11)
	AVX2_ROW_STORE(Y12, Y13)
	AVX2_ROW_STORE(Y14, Y15)
	VZEROUPPER
	RET

// ------------------------------------------------- AVX2 6×16, A unpacked
// As above, but A is read in place from row-major storage: rows at SI,
// SI+R11, SI+2*R11 and R10 = SI+3*R11, R10+R11, R10+2*R11 (R11 = lda in
// bytes), advancing 4 bytes per k step.

#define AVX2D_STEP(ao, bo) \
	VMOVUPS      bo(DI), Y0;          \
	VMOVUPS      bo+32(DI), Y1;       \
	VBROADCASTSS ao(SI), Y2;          \
	VFMADD231PS  Y0, Y2, Y4;          \
	VFMADD231PS  Y1, Y2, Y5;          \
	VBROADCASTSS ao(SI)(R11*1), Y3;   \
	VFMADD231PS  Y0, Y3, Y6;          \
	VFMADD231PS  Y1, Y3, Y7;          \
	VBROADCASTSS ao(SI)(R11*2), Y2;   \
	VFMADD231PS  Y0, Y2, Y8;          \
	VFMADD231PS  Y1, Y2, Y9;          \
	VBROADCASTSS ao(R10), Y3;         \
	VFMADD231PS  Y0, Y3, Y10;         \
	VFMADD231PS  Y1, Y3, Y11;         \
	VBROADCASTSS ao(R10)(R11*1), Y2;  \
	VFMADD231PS  Y0, Y2, Y12;         \
	VFMADD231PS  Y1, Y2, Y13;         \
	VBROADCASTSS ao(R10)(R11*2), Y3;  \
	VFMADD231PS  Y0, Y3, Y14;         \
	VFMADD231PS  Y1, Y3, Y15

// func sgemmKernelAVX2DirectA(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX2DirectA(SB), NOSPLIT, $0-56
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R11
	SHLQ $2, R11
	LEAQ (SI)(R11*2), R10
	ADDQ R11, R10
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	MOVQ CX, BX
	SHRQ $2, BX
	ANDQ $3, CX
	TESTQ BX, BX
	JZ   avx2d_tail

avx2d_loop4:
	AVX2D_STEP(0, 0)
	AVX2D_STEP(4, 64)
	AVX2D_STEP(8, 128)
	AVX2D_STEP(12, 192)
	ADDQ $16, SI
	ADDQ $16, R10
	ADDQ $256, DI
	DECQ BX
	JNZ  avx2d_loop4

avx2d_tail:
	TESTQ CX, CX
	JZ    avx2d_epilogue

avx2d_loop1:
	AVX2D_STEP(0, 0)
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $64, DI
	DECQ CX
	JNZ  avx2d_loop1

avx2d_epilogue:
	VBROADCASTSS alpha+48(FP), Y0
	VMULPS Y0, Y4, Y4
	VMULPS Y0, Y5, Y5
	VMULPS Y0, Y6, Y6
	VMULPS Y0, Y7, Y7
	VMULPS Y0, Y8, Y8
	VMULPS Y0, Y9, Y9
	VMULPS Y0, Y10, Y10
	VMULPS Y0, Y11, Y11
	VMULPS Y0, Y12, Y12
	VMULPS Y0, Y13, Y13
	VMULPS Y0, Y14, Y14
	VMULPS Y0, Y15, Y15
	MOVQ DX, R9

	MOVL  beta+52(FP), AX
	TESTL $0x7fffffff, AX
	JZ    avx2d_store

	VBROADCASTSS beta+52(FP), Y1
	AVX2_ROW_BETA(Y4, Y5)
	AVX2_ROW_BETA(Y6, Y7)
	AVX2_ROW_BETA(Y8, Y9)
	AVX2_ROW_BETA(Y10, Y11)
	AVX2_ROW_BETA(Y12, Y13)
	AVX2_ROW_BETA(Y14, Y15)
	VZEROUPPER
	RET

avx2d_store:
	AVX2_ROW_STORE(Y4, Y5)
	AVX2_ROW_STORE(Y6, Y7)
	AVX2_ROW_STORE(Y8, Y9)
	AVX2_ROW_STORE(Y10, Y11)
	AVX2_ROW_STORE(Y12, Y13)
	AVX2_ROW_STORE(Y14, Y15)
	VZEROUPPER
	RET

// -------------------------------------------------------------- AVX-512 12×32
// Tested and tuned on AMD EPYC Zen 5 (gemmKernelFor decides where it runs).
// Registers: CX k counter, SI A panel, DI B panel, DX C, R8 ldc in bytes, Z0-Z1 one row of B (32 floats), Z2-Z3
// broadcasts of A, Z8-Z31 the 12×32 tile (row r in Z(8+2r), Z(9+2r)).
// Only AVX-512F instructions are used (VPXORD, not VXORPS, to clear zmm).

#define AVX512_ROW(ao, r0, r1, bc) \
	VBROADCASTSS ao(SI), bc;   \
	VFMADD231PS  Z0, bc, r0;   \
	VFMADD231PS  Z1, bc, r1

#define AVX512_STEP(ao, bo) \
	VMOVUPS bo(DI), Z0;                   \
	VMOVUPS bo+64(DI), Z1;                \
	AVX512_ROW(ao, Z8, Z9, Z2);           \
	AVX512_ROW(ao+4, Z10, Z11, Z3);       \
	AVX512_ROW(ao+8, Z12, Z13, Z2);       \
	AVX512_ROW(ao+12, Z14, Z15, Z3);      \
	AVX512_ROW(ao+16, Z16, Z17, Z2);      \
	AVX512_ROW(ao+20, Z18, Z19, Z3);      \
	AVX512_ROW(ao+24, Z20, Z21, Z2);      \
	AVX512_ROW(ao+28, Z22, Z23, Z3);      \
	AVX512_ROW(ao+32, Z24, Z25, Z2);      \
	AVX512_ROW(ao+36, Z26, Z27, Z3);      \
	AVX512_ROW(ao+40, Z28, Z29, Z2);      \
	AVX512_ROW(ao+44, Z30, Z31, Z3)

#define AVX512_ROW_OUT(r0, r1) \
	VMULPS Z0, r0, r0;             \
	VMULPS Z0, r1, r1;             \
	TESTL  AX, AX;                 \
	JZ     3(PC);                  \
	VFMADD231PS (R9), Z1, r0;      \
	VFMADD231PS 64(R9), Z1, r1;    \
	VMOVUPS r0, (R9);              \
	VMOVUPS r1, 64(R9);            \
	ADDQ    R8, R9

// AVX512_PREFETCH_C prefetches the 12×32 C tile at R9 (row stride R8),
// advancing R9; AVX512_PREFETCH_C13 does it with R13.
#define PF_ROW(r) PREFETCHT0 (r); PREFETCHT0 64(r); ADDQ R8, r
#define AVX512_PREFETCH_C \
	PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); \
	PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9); PF_ROW(R9)
#define AVX512_PREFETCH_C13 \
	PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); \
	PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13); PF_ROW(R13)

// func sgemmKernelAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX512(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31

	// Bring the C tile (12 rows of 128 bytes) towards L1 while the k loop
	// runs.
	MOVQ DX, R9
	AVX512_PREFETCH_C

	MOVQ CX, BX
	SHRQ $1, BX
	ANDQ $1, CX
	TESTQ BX, BX
	JZ   avx512_tail

avx512_loop2:
	AVX512_STEP(0, 0)
	AVX512_STEP(48, 128)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  avx512_loop2

avx512_tail:
	TESTQ CX, CX
	JZ    avx512_epilogue
	AVX512_STEP(0, 0)

avx512_epilogue:
	VBROADCASTSS alpha+40(FP), Z0
	VBROADCASTSS beta+44(FP), Z1
	// AX == 0 means beta == ±0: C is not read.
	MOVL beta+44(FP), AX
	ANDL $0x7fffffff, AX
	MOVQ DX, R9
	AVX512_ROW_OUT(Z8, Z9)
	AVX512_ROW_OUT(Z10, Z11)
	AVX512_ROW_OUT(Z12, Z13)
	AVX512_ROW_OUT(Z14, Z15)
	AVX512_ROW_OUT(Z16, Z17)
	AVX512_ROW_OUT(Z18, Z19)
	AVX512_ROW_OUT(Z20, Z21)
	AVX512_ROW_OUT(Z22, Z23)
	AVX512_ROW_OUT(Z24, Z25)
	AVX512_ROW_OUT(Z26, Z27)
	AVX512_ROW_OUT(Z28, Z29)
	AVX512_ROW_OUT(Z30, Z31)
	VZEROUPPER
	RET

// ------------------------------------------------- AVX-512 12×32, A unpacked
// As sgemmKernelAVX512, but A is read in place from row-major storage (the
// direct-A path of gemmSerial, for products with few B panels): rows 0-2 at
// SI, SI+R9, SI+2*R9; rows 3-5 at R10 = SI+3*R9, ...; rows 6-8 at R11 =
// SI+6*R9; rows 9-11 at R12 = SI+9*R9 (R9 = lda in bytes), all advancing 4
// bytes per k step.

#define AVX512D_ROW(addr, r0, r1, bc) \
	VBROADCASTSS addr, bc;      \
	VFMADD231PS  Z0, bc, r0;    \
	VFMADD231PS  Z1, bc, r1

#define AVX512D_STEP(ao, bo) \
	VMOVUPS bo(DI), Z0;                           \
	VMOVUPS bo+64(DI), Z1;                        \
	AVX512D_ROW(ao(SI), Z8, Z9, Z2);              \
	AVX512D_ROW(ao(SI)(R9*1), Z10, Z11, Z3);      \
	AVX512D_ROW(ao(SI)(R9*2), Z12, Z13, Z4);      \
	AVX512D_ROW(ao(R10), Z14, Z15, Z5);           \
	AVX512D_ROW(ao(R10)(R9*1), Z16, Z17, Z2);     \
	AVX512D_ROW(ao(R10)(R9*2), Z18, Z19, Z3);     \
	AVX512D_ROW(ao(R11), Z20, Z21, Z4);           \
	AVX512D_ROW(ao(R11)(R9*1), Z22, Z23, Z5);     \
	AVX512D_ROW(ao(R11)(R9*2), Z24, Z25, Z2);     \
	AVX512D_ROW(ao(R12), Z26, Z27, Z3);           \
	AVX512D_ROW(ao(R12)(R9*1), Z28, Z29, Z4);     \
	AVX512D_ROW(ao(R12)(R9*2), Z30, Z31, Z5)

// func sgemmKernelAVX512DirectA(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX512DirectA(SB), NOSPLIT, $0-56
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $2, R9
	LEAQ (SI)(R9*2), R10
	ADDQ R9, R10
	LEAQ (R10)(R9*2), R11
	ADDQ R9, R11
	LEAQ (R11)(R9*2), R12
	ADDQ R9, R12
	MOVQ b+24(FP), DI
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8

	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31

	MOVQ DX, R13
	AVX512_PREFETCH_C13

	MOVQ CX, BX
	SHRQ $2, BX
	ANDQ $3, CX
	TESTQ BX, BX
	JZ   avx512d_tail

avx512d_loop4:
	AVX512D_STEP(0, 0)
	AVX512D_STEP(4, 128)
	AVX512D_STEP(8, 256)
	AVX512D_STEP(12, 384)
	ADDQ $16, SI
	ADDQ $16, R10
	ADDQ $16, R11
	ADDQ $16, R12
	ADDQ $512, DI
	DECQ BX
	JNZ  avx512d_loop4

avx512d_tail:
	TESTQ CX, CX
	JZ    avx512d_epilogue

avx512d_loop1:
	AVX512D_STEP(0, 0)
	ADDQ $4, SI
	ADDQ $4, R10
	ADDQ $4, R11
	ADDQ $4, R12
	ADDQ $128, DI
	DECQ CX
	JNZ  avx512d_loop1

avx512d_epilogue:
	VBROADCASTSS alpha+48(FP), Z0
	VBROADCASTSS beta+52(FP), Z1
	MOVL beta+52(FP), AX
	ANDL $0x7fffffff, AX
	MOVQ DX, R9
	AVX512_ROW_OUT(Z8, Z9)
	AVX512_ROW_OUT(Z10, Z11)
	AVX512_ROW_OUT(Z12, Z13)
	AVX512_ROW_OUT(Z14, Z15)
	AVX512_ROW_OUT(Z16, Z17)
	AVX512_ROW_OUT(Z18, Z19)
	AVX512_ROW_OUT(Z20, Z21)
	AVX512_ROW_OUT(Z22, Z23)
	AVX512_ROW_OUT(Z24, Z25)
	AVX512_ROW_OUT(Z26, Z27)
	AVX512_ROW_OUT(Z28, Z29)
	AVX512_ROW_OUT(Z30, Z31)
	VZEROUPPER
	RET

// ------------------------------------------------------------- B packing

// func copyRows16SSE(dst, src *float32, ld, kc int)
// Copies 16 floats from each of kc rows of src (stride ld elements) to dst,
// 64 bytes per row, back to back. kc >= 1.
TEXT ·copyRows16SSE(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX

copy16_loop:
	MOVUPS (SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS X0, (DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	ADDQ   R8, SI
	ADDQ   $64, DI
	DECQ   CX
	JNZ    copy16_loop
	RET

// func copyRows32SSE(dst, src *float32, ld, kc int)
// Copies 32 floats from each of kc rows of src (stride ld elements) to dst,
// 128 bytes per row, back to back. kc >= 1.
TEXT ·copyRows32SSE(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX

copy32_loop:
	MOVUPS (SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS 64(SI), X4
	MOVUPS 80(SI), X5
	MOVUPS 96(SI), X6
	MOVUPS 112(SI), X7
	MOVUPS X0, (DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	MOVUPS X4, 64(DI)
	MOVUPS X5, 80(DI)
	MOVUPS X6, 96(DI)
	MOVUPS X7, 112(DI)
	ADDQ   R8, SI
	ADDQ   $128, DI
	DECQ   CX
	JNZ    copy32_loop
	RET

// func copyRows12SSE(dst, src *float32, ld, kc int)
// Copies 12 floats from each of kc rows of src (stride ld elements) to dst,
// 48 bytes per row, back to back: a transposed A panel of the AVX-512
// kernel. kc >= 1.
TEXT ·copyRows12SSE(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX

copy12_loop:
	MOVUPS (SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS X0, (DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	ADDQ   R8, SI
	ADDQ   $48, DI
	DECQ   CX
	JNZ    copy12_loop
	RET

// func transpose8AVX(dst *float32, nr int, src *float32, ld int, kc8 int)
// Packs 8 stored rows of B (row r at src + r*ld, 8*kc8 floats each) into 8
// columns of a p-major panel of width nr: dst[p*nr + r] = src[r*ld + p],
// one 8×8 block per step (unpack, shuffle, 128-bit permute: the standard
// AVX 8×8 transpose). kc8 >= 1.
TEXT ·transpose8AVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ nr+8(FP), R9
	SHLQ $2, R9
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ kc8+32(FP), CX
	LEAQ (SI)(R8*4), R10 // rows 4..7
	LEAQ (R9)(R9*2), R11 // 3 panel rows
	LEAQ (R8)(R8*2), R12 // 3 stored rows

tr8_loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R12*1), Y3
	VMOVUPS (R10), Y4
	VMOVUPS (R10)(R8*1), Y5
	VMOVUPS (R10)(R8*2), Y6
	VMOVUPS (R10)(R12*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(R9*1)
	VMOVUPS Y10, (DI)(R9*2)
	VMOVUPS Y11, (DI)(R11*1)
	LEAQ    (DI)(R9*4), DI
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, (DI)(R9*1)
	VMOVUPS Y14, (DI)(R9*2)
	VMOVUPS Y15, (DI)(R11*1)
	LEAQ    (DI)(R9*4), DI
	ADDQ    $32, SI
	ADDQ    $32, R10
	DECQ    CX
	JNZ     tr8_loop
	VZEROUPPER
	RET

// ------------------------------------------------------------- FMA peak loop

// func fmaPeakAVX2(n int)
TEXT ·fmaPeakAVX2(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	TESTQ  CX, CX
	JZ     fma_done

fma_loop:
	VFMADD231PS Y0, Y1, Y4
	VFMADD231PS Y0, Y1, Y5
	VFMADD231PS Y0, Y1, Y6
	VFMADD231PS Y0, Y1, Y7
	VFMADD231PS Y0, Y1, Y8
	VFMADD231PS Y0, Y1, Y9
	VFMADD231PS Y0, Y1, Y10
	VFMADD231PS Y0, Y1, Y11
	VFMADD231PS Y0, Y1, Y12
	VFMADD231PS Y0, Y1, Y13
	VFMADD231PS Y0, Y1, Y14
	VFMADD231PS Y0, Y1, Y15
	DECQ CX
	JNZ  fma_loop

fma_done:
	VZEROUPPER
	RET

// func fmaPeakAVX512(n int)
// n iterations of 24 independent 16-wide FMAs (768 flops per iteration; 24
// chains cover 4-cycle latency on 2 pipes with room to spare).
TEXT ·fmaPeakAVX512(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
	TESTQ  CX, CX
	JZ     fma512_done

fma512_loop:
	VFMADD231PS Z0, Z1, Z8
	VFMADD231PS Z0, Z1, Z9
	VFMADD231PS Z0, Z1, Z10
	VFMADD231PS Z0, Z1, Z11
	VFMADD231PS Z0, Z1, Z12
	VFMADD231PS Z0, Z1, Z13
	VFMADD231PS Z0, Z1, Z14
	VFMADD231PS Z0, Z1, Z15
	VFMADD231PS Z0, Z1, Z16
	VFMADD231PS Z0, Z1, Z17
	VFMADD231PS Z0, Z1, Z18
	VFMADD231PS Z0, Z1, Z19
	VFMADD231PS Z0, Z1, Z20
	VFMADD231PS Z0, Z1, Z21
	VFMADD231PS Z0, Z1, Z22
	VFMADD231PS Z0, Z1, Z23
	VFMADD231PS Z0, Z1, Z24
	VFMADD231PS Z0, Z1, Z25
	VFMADD231PS Z0, Z1, Z26
	VFMADD231PS Z0, Z1, Z27
	VFMADD231PS Z0, Z1, Z28
	VFMADD231PS Z0, Z1, Z29
	VFMADD231PS Z0, Z1, Z30
	VFMADD231PS Z0, Z1, Z31
	DECQ CX
	JNZ  fma512_loop

fma512_done:
	VZEROUPPER
	RET

// func cpuidRaw(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuidRaw(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// ------------------------------------- AVX-512 12×16, float64 accumulation
// sgemmF64KernelAVX512: the float64-accumulating micro-kernel of
// gemm_f64.go. 24 zmm accumulators of 8 float64 (12 rows × 16 columns),
// per k step two B loads converted float32 → float64 (Z0, Z1) and one
// float64 broadcast of A per row (the A panel is packed in float64). The
// epilogue forms alpha·sum + beta·C in float64 (C converted, one fused
// multiply-add) and rounds once to float32.

#define F64_ROW(ao, r0, r1, bc) \
	VBROADCASTSD ao(SI), bc;    \
	VFMADD231PD  Z0, bc, r0;    \
	VFMADD231PD  Z1, bc, r1

#define F64_STEP \
	VCVTPS2PD (DI), Z0;              \
	VCVTPS2PD 32(DI), Z1;            \
	F64_ROW(0, Z8, Z9, Z2);          \
	F64_ROW(8, Z10, Z11, Z3);        \
	F64_ROW(16, Z12, Z13, Z4);       \
	F64_ROW(24, Z14, Z15, Z5);       \
	F64_ROW(32, Z16, Z17, Z2);       \
	F64_ROW(40, Z18, Z19, Z3);       \
	F64_ROW(48, Z20, Z21, Z4);       \
	F64_ROW(56, Z22, Z23, Z5);       \
	F64_ROW(64, Z24, Z25, Z2);       \
	F64_ROW(72, Z26, Z27, Z3);       \
	F64_ROW(80, Z28, Z29, Z4);       \
	F64_ROW(88, Z30, Z31, Z5)

#define F64_ROW_OUT(r0, r1) \
	VMULPD  Z0, r0, r0;            \
	VMULPD  Z0, r1, r1;            \
	TESTL   AX, AX;                \
	JZ      5(PC);                 \
	VCVTPS2PD (R9), Z2;            \
	VCVTPS2PD 32(R9), Z3;          \
	VFMADD231PD Z2, Z1, r0;        \
	VFMADD231PD Z3, Z1, r1;        \
	VCVTPD2PS r0, Y2;              \
	VCVTPD2PS r1, Y3;              \
	VMOVUPS Y2, (R9);              \
	VMOVUPS Y3, 32(R9);            \
	ADDQ    R8, R9

// func sgemmF64KernelAVX512(kc int, a *float64, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmF64KernelAVX512(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11
	VPXORQ Z12, Z12, Z12
	VPXORQ Z13, Z13, Z13
	VPXORQ Z14, Z14, Z14
	VPXORQ Z15, Z15, Z15
	VPXORQ Z16, Z16, Z16
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VPXORQ Z23, Z23, Z23
	VPXORQ Z24, Z24, Z24
	VPXORQ Z25, Z25, Z25
	VPXORQ Z26, Z26, Z26
	VPXORQ Z27, Z27, Z27
	VPXORQ Z28, Z28, Z28
	VPXORQ Z29, Z29, Z29
	VPXORQ Z30, Z30, Z30
	VPXORQ Z31, Z31, Z31

f64_loop:
	F64_STEP
	ADDQ $96, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  f64_loop

	VCVTSS2SD    alpha+40(FP), X0, X0
	VBROADCASTSD X0, Z0
	VCVTSS2SD    beta+44(FP), X1, X1
	VBROADCASTSD X1, Z1
	// AX == 0 means beta == ±0: C is not read.
	MOVL beta+44(FP), AX
	ANDL $0x7fffffff, AX
	MOVQ DX, R9
	F64_ROW_OUT(Z8, Z9)
	F64_ROW_OUT(Z10, Z11)
	F64_ROW_OUT(Z12, Z13)
	F64_ROW_OUT(Z14, Z15)
	F64_ROW_OUT(Z16, Z17)
	F64_ROW_OUT(Z18, Z19)
	F64_ROW_OUT(Z20, Z21)
	F64_ROW_OUT(Z22, Z23)
	F64_ROW_OUT(Z24, Z25)
	F64_ROW_OUT(Z26, Z27)
	F64_ROW_OUT(Z28, Z29)
	F64_ROW_OUT(Z30, Z31)
	VZEROUPPER
	RET

// --------------------------------------- AVX2 6×8, float64 accumulation
// sgemmF64KernelAVX2: gemmKernelF64's contract on AVX2+FMA: 12 ymm
// accumulators of 4 float64 (6 rows × 8 columns), per k step two B loads
// converted float32 → float64 (Y0, Y1) and one float64 broadcast of A per
// row; the epilogue as sgemmF64KernelAVX512's.

#define F64A_ROW(ao, r0, r1) \
	VBROADCASTSD ao(SI), Y2;    \
	VFMADD231PD  Y0, Y2, r0;    \
	VFMADD231PD  Y1, Y2, r1

#define F64A_ROW_OUT(r0, r1) \
	VMULPD  Y14, r0, r0;           \
	VMULPD  Y14, r1, r1;           \
	TESTL   AX, AX;                \
	JZ      5(PC);                 \
	VCVTPS2PD (R9), Y2;            \
	VCVTPS2PD 16(R9), Y3;          \
	VFMADD231PD Y2, Y15, r0;       \
	VFMADD231PD Y3, Y15, r1;       \
	VCVTPD2PSY r0, X2;             \
	VCVTPD2PSY r1, X3;             \
	VMOVUPS X2, (R9);              \
	VMOVUPS X3, 16(R9);            \
	ADDQ    R8, R9

// func sgemmF64KernelAVX2(kc int, a *float64, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmF64KernelAVX2(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	VXORPD Y14, Y14, Y14
	VXORPD Y15, Y15, Y15

f64a_loop:
	VCVTPS2PD (DI), Y0
	VCVTPS2PD 16(DI), Y1
	F64A_ROW(0, Y4, Y5)
	F64A_ROW(8, Y6, Y7)
	F64A_ROW(16, Y8, Y9)
	F64A_ROW(24, Y10, Y11)
	F64A_ROW(32, Y12, Y13)
	F64A_ROW(40, Y14, Y15)
	ADDQ $48, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  f64a_loop

	// Rows 0-4 use Y4-Y13; row 5's sums move to Y0/Y1 so Y14/Y15 can hold
	// alpha and beta.
	VMOVAPD Y14, Y0
	VMOVAPD Y15, Y1
	VCVTSS2SD    alpha+40(FP), X14, X14
	VBROADCASTSD X14, Y14
	VCVTSS2SD    beta+44(FP), X15, X15
	VBROADCASTSD X15, Y15
	// AX == 0 means beta == ±0: C is not read.
	MOVL beta+44(FP), AX
	ANDL $0x7fffffff, AX
	MOVQ DX, R9
	F64A_ROW_OUT(Y4, Y5)
	F64A_ROW_OUT(Y6, Y7)
	F64A_ROW_OUT(Y8, Y9)
	F64A_ROW_OUT(Y10, Y11)
	F64A_ROW_OUT(Y12, Y13)
	F64A_ROW_OUT(Y0, Y1)
	VZEROUPPER
	RET
