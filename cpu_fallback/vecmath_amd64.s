//go:build amd64 && !purego

#include "textflag.h"

// Vector float32 kernels (contract: vecImpl in vecmath.go). Each lane runs
// exactly the operation sequence of the scalar Go function it implements
// (exp32, erf32, gelu32, geluGrad32), so results are bitwise equal to the Go
// loop. The bodies are macros over register names and are instantiated for
// AVX2+FMA (ymm, 8 lanes) and AVX-512F (zmm, 16 lanes); every instruction
// used exists in both forms (no compare-and-blend, whose AVX-512 form needs
// mask registers), and only AVX-512F instructions are used on zmm.
//
// Go operand order: for VMAXPS/VMINPS A, B, D the result is D = B op A and a
// NaN in either returns A, so "VMAXPS X, LO, X" is the Go clamp
// "if x < lo { x = lo }" and lets NaN through. VFMADD213PS C, B, A computes
// A = B·A + C; VFMADD231PS C, B, A computes A = B·C + A. Only the first
// operand may be in memory, which is where the constants are.
//
// R9 points at vecTable: each constant repeated 16 times, 64 bytes apart,
// in the order of the vt* indices of vecmath.go. n is a positive multiple
// of 16.

#define C_HALF 0(R9)
#define C_RSQRT2 64(R9)
#define C_RSQRT2PI 128(R9)
#define C_NEGHALF 192(R9)
#define C_ONE 256(R9)
#define C_ERFLO 320(R9)
#define C_ERFHI 384(R9)
#define C_A1 448(R9)
#define C_A3 512(R9)
#define C_A5 576(R9)
#define C_A7 640(R9)
#define C_A9 704(R9)
#define C_A11 768(R9)
#define C_A13 832(R9)
#define C_B0 896(R9)
#define C_B2 960(R9)
#define C_B4 1024(R9)
#define C_B6 1088(R9)
#define C_B8 1152(R9)
#define C_EXPLO 1216(R9)
#define C_EXPHI 1280(R9)
#define C_LOG2E 1344(R9)
#define C_SHIFTER 1408(R9)
#define C_NEGC1 1472(R9)
#define C_NEGC2 1536(R9)
#define C_P0 1600(R9)
#define C_P1 1664(R9)
#define C_P2 1728(R9)
#define C_P3 1792(R9)
#define C_P4 1856(R9)
#define C_P5 1920(R9)
#define C_I127 1984(R9)
#define C_ZERO 2048(R9)

// ERF(Z, Y, P, Q, T): Z = erf32(Z). Clobbers Y, P, Q, T.
#define ERF(Z, Y, P, Q, T) \
	VMOVUPS     C_ERFLO, T; \
	VMAXPS      Z, T, Z;    \
	VMOVUPS     C_ERFHI, T; \
	VMINPS      Z, T, Z;    \
	VMULPS      Z, Z, Y;    \
	VMOVUPS     C_A13, P;   \
	VFMADD213PS C_A11, Y, P; \
	VFMADD213PS C_A9, Y, P; \
	VFMADD213PS C_A7, Y, P; \
	VFMADD213PS C_A5, Y, P; \
	VFMADD213PS C_A3, Y, P; \
	VFMADD213PS C_A1, Y, P; \
	VMULPS      P, Z, P;    \
	VMOVUPS     C_B8, Q;    \
	VFMADD213PS C_B6, Y, Q; \
	VFMADD213PS C_B4, Y, Q; \
	VFMADD213PS C_B2, Y, Q; \
	VFMADD213PS C_B0, Y, Q; \
	VDIVPS      Q, P, Z

// EXP(X, T, K, R, P): X = exp32(X). Clobbers T, K, R, P.
#define EXP(X, T, K, R, P) \
	VMOVUPS     C_EXPLO, T;   \
	VMAXPS      X, T, X;      \
	VMOVUPS     C_EXPHI, T;   \
	VMINPS      X, T, X;      \
	VMOVUPS     C_SHIFTER, T; \
	VFMADD231PS C_LOG2E, X, T; \
	VSUBPS      C_SHIFTER, T, K; \
	VMOVAPS     X, R;         \
	VFMADD231PS C_NEGC1, K, R; \
	VFMADD231PS C_NEGC2, K, R; \
	VMOVUPS     C_P0, P;      \
	VFMADD213PS C_P1, R, P;   \
	VFMADD213PS C_P2, R, P;   \
	VFMADD213PS C_P3, R, P;   \
	VFMADD213PS C_P4, R, P;   \
	VFMADD213PS C_P5, R, P;   \
	VMULPS      R, R, K;      \
	VFMADD213PS R, K, P;      \
	VADDPS      C_ONE, P, P;  \
	VPSUBD      C_SHIFTER, T, T; \
	VPADDD      C_I127, T, T; \
	VPMAXSD     C_ZERO, T, T; \
	VPSLLD      $23, T, T;    \
	VMULPS      T, P, X

// GELU(X, H, Z, Y, P, Q, T): Z = gelu32(X). Clobbers H, Y, P, Q, T.
#define GELU(X, H, Z, Y, P, Q, T) \
	VMULPS      C_HALF, X, H;   \
	VMULPS      C_RSQRT2, X, Z; \
	ERF(Z, Y, P, Q, T);         \
	VFMADD213PS H, H, Z

// GELUGRAD(X, Z, Y, P, Q, T, K, R): Z = geluGrad32(X). Clobbers Y, P, Q, T, K, R.
#define GELUGRAD(X, Z, Y, P, Q, T, K, R) \
	VMULPS      C_RSQRT2, X, Z;  \
	ERF(Z, Y, P, Q, T);          \
	VMOVUPS     C_HALF, T;       \
	VFMADD213PS T, T, Z;         \
	VMULPS      X, X, Y;         \
	VMULPS      C_NEGHALF, Y, Y; \
	EXP(Y, T, K, R, P);          \
	VMULPS      Y, X, Y;         \
	VFMADD231PS C_RSQRT2PI, Y, Z

// ---------------------------------------------------------------- AVX2 + FMA, 8 lanes (16-lane reductions as two ymm)

// func vecGeluAVX2(o, a, tbl *float32, n int)
TEXT ·vecGeluAVX2(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

geluAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	GELU(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	VMOVUPS Y2, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     geluAVX2_loop
	VZEROUPPER
	RET

// func vecGeluGradMulAVX2(o, gr, a, tbl *float32, n int)
TEXT ·vecGeluGradMulAVX2(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ gr+8(FP), DX
	MOVQ a+16(FP), SI
	MOVQ tbl+24(FP), R9
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gelugradAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	GELUGRAD(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMULPS  (DX)(AX*1), Y1, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     gelugradAVX2_loop
	VZEROUPPER
	RET

// func vecExpAVX2(o, a, tbl *float32, n int)
TEXT ·vecExpAVX2(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

expAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	EXP(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     expAVX2_loop
	VZEROUPPER
	RET

// func vecExpSubSumAVX2(x, tbl *float32, n int, m float32, acc *[16]float32)
TEXT ·vecExpSubSumAVX2(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), DI
	MOVQ         tbl+8(FP), R9
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	MOVQ         acc+32(FP), R10
	SHLQ         $2, CX
	XORQ         AX, AX
	VMOVUPS      (R10), Y13
	VMOVUPS      32(R10), Y14

expsumAVX2_loop:
	VMOVUPS (DI)(AX*1), Y0
	VSUBPS  Y15, Y0, Y0
	EXP(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)(AX*1)
	VADDPS  Y0, Y13, Y13
	VMOVUPS 32(DI)(AX*1), Y8
	VSUBPS  Y15, Y8, Y8
	EXP(Y8, Y9, Y10, Y11, Y12)
	VMOVUPS Y8, 32(DI)(AX*1)
	VADDPS  Y8, Y14, Y14
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     expsumAVX2_loop
	VMOVUPS Y13, (R10)
	VMOVUPS Y14, 32(R10)
	VZEROUPPER
	RET

// func vecMaxAVX2(x *float32, n int, m float32) float32
TEXT ·vecMaxAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	VMOVAPS      Y0, Y1
	SHLQ         $2, CX
	XORQ         AX, AX

maxAVX2_loop:
	VMOVUPS (SI)(AX*1), Y2
	VMAXPS  Y0, Y2, Y0
	VMOVUPS 32(SI)(AX*1), Y3
	VMAXPS  Y1, Y3, Y1
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     maxAVX2_loop
	VMAXPS  Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VPSHUFD      $1, X0, X1
	VMAXSS       X1, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func vecDotAVX2(a, b *float32, n int, acc *[16]float32)
TEXT ·vecDotAVX2(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DX
	MOVQ n+16(FP), CX
	MOVQ acc+24(FP), R10
	SHLQ $2, CX
	XORQ AX, AX
	VMOVUPS (R10), Y13
	VMOVUPS 32(R10), Y14

dotAVX2_loop:
	VMOVUPS     (SI)(AX*1), Y0
	VFMADD231PS (DX)(AX*1), Y0, Y13
	VMOVUPS     32(SI)(AX*1), Y1
	VFMADD231PS 32(DX)(AX*1), Y1, Y14
	ADDQ        $64, AX
	CMPQ        AX, CX
	JLT         dotAVX2_loop
	VMOVUPS     Y13, (R10)
	VMOVUPS     Y14, 32(R10)
	VZEROUPPER
	RET

// func vecSoftmaxGradAVX2(o, gr, p *float32, n int, d, s float32)
TEXT ·vecSoftmaxGradAVX2(SB), NOSPLIT, $0-40
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), SI
	MOVQ         p+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS d+32(FP), Y14
	VBROADCASTSS s+36(FP), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

smgradAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  (DX)(AX*1), Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     smgradAVX2_loop
	VZEROUPPER
	RET

// func vecScaleAVX2(x *float32, n int, s float32)
TEXT ·vecScaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

scaleAVX2_loop:
	VMULPS  (DI)(AX*1), Y15, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     scaleAVX2_loop
	VZEROUPPER
	RET


// func vecAddAVX2(o, a, b *float32, n int)
TEXT ·vecAddAVX2(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

addAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VADDPS  (DX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     addAVX2_loop
	VZEROUPPER
	RET

// func vecReluAVX2(o, a, tbl *float32, n int)
TEXT ·vecReluAVX2(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

reluAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VMAXPS  C_ZERO, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     reluAVX2_loop
	VZEROUPPER
	RET

// func vecLNApplyAVX2(o, x, w, b *float32, n int, m, r float32)
TEXT ·vecLNApplyAVX2(SB), NOSPLIT, $0-48
	MOVQ         o+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	MOVQ         b+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y14
	VBROADCASTSS r+44(FP), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

lnapplyAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMULPS  (DX)(AX*1), Y0, Y0
	VADDPS  (R8)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     lnapplyAVX2_loop
	VZEROUPPER
	RET

// func vecLNParamRowAVX2(sw, sb, gr, x *float32, n int, m, r float32)
TEXT ·vecLNParamRowAVX2(SB), NOSPLIT, $0-48
	MOVQ         sw+0(FP), DI
	MOVQ         sb+8(FP), R10
	MOVQ         gr+16(FP), DX
	MOVQ         x+24(FP), SI
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y14
	VBROADCASTSS r+44(FP), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

lnparamAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMOVUPS (DX)(AX*1), Y1
	VMULPS  Y1, Y0, Y0
	VADDPS  (DI)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	VADDPS  (R10)(AX*1), Y1, Y1
	VMOVUPS Y1, (R10)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     lnparamAVX2_loop
	VZEROUPPER
	RET

// func vecLNGradRowAVX2(o, gr, x, w *float32, n int, m, r, sg, sgx float32)
TEXT ·vecLNGradRowAVX2(SB), NOSPLIT, $0-56
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), DX
	MOVQ         x+16(FP), SI
	MOVQ         w+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y12
	VBROADCASTSS r+44(FP), Y13
	VBROADCASTSS sg+48(FP), Y14
	VBROADCASTSS sgx+52(FP), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

lngradAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VSUBPS  Y12, Y0, Y0
	VMULPS  Y13, Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMOVUPS (DX)(AX*1), Y1
	VMULPS  (R8)(AX*1), Y1, Y1
	VSUBPS  Y14, Y1, Y1
	VSUBPS  Y0, Y1, Y1
	VMULPS  Y13, Y1, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     lngradAVX2_loop
	VZEROUPPER
	RET

// func vecSum64AVX2(x *float32, n int, acc *[16]float64)
TEXT ·vecSum64AVX2(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    acc+16(FP), R10
	VMOVUPD (R10), Y12
	VMOVUPD 32(R10), Y13
	VMOVUPD 64(R10), Y14
	VMOVUPD 96(R10), Y15
	SHLQ    $2, CX
	XORQ    AX, AX

sum64AVX2_loop:
	VCVTPS2PD (SI)(AX*1), Y0
	VADDPD    Y0, Y12, Y12
	VCVTPS2PD 16(SI)(AX*1), Y1
	VADDPD    Y1, Y13, Y13
	VCVTPS2PD 32(SI)(AX*1), Y2
	VADDPD    Y2, Y14, Y14
	VCVTPS2PD 48(SI)(AX*1), Y3
	VADDPD    Y3, Y15, Y15
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       sum64AVX2_loop
	VMOVUPD   Y12, (R10)
	VMOVUPD   Y13, 32(R10)
	VMOVUPD   Y14, 64(R10)
	VMOVUPD   Y15, 96(R10)
	VZEROUPPER
	RET

// func vecSumSqDev64AVX2(x *float32, n int, m float64, acc *[16]float64)
TEXT ·vecSumSqDev64AVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSD m+16(FP), Y11
	MOVQ         acc+24(FP), R10
	VMOVUPD      (R10), Y12
	VMOVUPD      32(R10), Y13
	VMOVUPD      64(R10), Y14
	VMOVUPD      96(R10), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

sumsq64AVX2_loop:
	VCVTPS2PD (SI)(AX*1), Y0
	VSUBPD    Y11, Y0, Y0
	VMULPD    Y0, Y0, Y0
	VADDPD    Y0, Y12, Y12
	VCVTPS2PD 16(SI)(AX*1), Y1
	VSUBPD    Y11, Y1, Y1
	VMULPD    Y1, Y1, Y1
	VADDPD    Y1, Y13, Y13
	VCVTPS2PD 32(SI)(AX*1), Y2
	VSUBPD    Y11, Y2, Y2
	VMULPD    Y2, Y2, Y2
	VADDPD    Y2, Y14, Y14
	VCVTPS2PD 48(SI)(AX*1), Y3
	VSUBPD    Y11, Y3, Y3
	VMULPD    Y3, Y3, Y3
	VADDPD    Y3, Y15, Y15
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       sumsq64AVX2_loop
	VMOVUPD   Y12, (R10)
	VMOVUPD   Y13, 32(R10)
	VMOVUPD   Y14, 64(R10)
	VMOVUPD   Y15, 96(R10)
	VZEROUPPER
	RET

// func vecLNGradSumsAVX2(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)
TEXT ·vecLNGradSumsAVX2(SB), NOSPLIT, $0-64
	MOVQ         gr+0(FP), DX
	MOVQ         w+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	VBROADCASTSD m+32(FP), Y2
	VBROADCASTSD r+40(FP), Y3
	MOVQ         sg+48(FP), R10
	MOVQ         sgx+56(FP), R11
	VMOVUPD      (R10), Y8
	VMOVUPD      32(R10), Y9
	VMOVUPD      64(R10), Y10
	VMOVUPD      96(R10), Y11
	VMOVUPD      (R11), Y12
	VMOVUPD      32(R11), Y13
	VMOVUPD      64(R11), Y14
	VMOVUPD      96(R11), Y15
	SHLQ         $2, CX
	XORQ         AX, AX

lnsumsAVX2_loop:
	VCVTPS2PD 0(DX)(AX*1), Y0
	VCVTPS2PD 0(R8)(AX*1), Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y8, Y8
	VCVTPS2PD 0(SI)(AX*1), Y1
	VSUBPD    Y2, Y1, Y1
	VMULPD    Y3, Y1, Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y12, Y12
	VCVTPS2PD 16(DX)(AX*1), Y0
	VCVTPS2PD 16(R8)(AX*1), Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y9, Y9
	VCVTPS2PD 16(SI)(AX*1), Y1
	VSUBPD    Y2, Y1, Y1
	VMULPD    Y3, Y1, Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y13, Y13
	VCVTPS2PD 32(DX)(AX*1), Y0
	VCVTPS2PD 32(R8)(AX*1), Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y10, Y10
	VCVTPS2PD 32(SI)(AX*1), Y1
	VSUBPD    Y2, Y1, Y1
	VMULPD    Y3, Y1, Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y14, Y14
	VCVTPS2PD 48(DX)(AX*1), Y0
	VCVTPS2PD 48(R8)(AX*1), Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y11, Y11
	VCVTPS2PD 48(SI)(AX*1), Y1
	VSUBPD    Y2, Y1, Y1
	VMULPD    Y3, Y1, Y1
	VMULPD    Y1, Y0, Y0
	VADDPD    Y0, Y15, Y15
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       lnsumsAVX2_loop
	VMOVUPD   Y8, (R10)
	VMOVUPD   Y9, 32(R10)
	VMOVUPD   Y10, 64(R10)
	VMOVUPD   Y11, 96(R10)
	VMOVUPD   Y12, (R11)
	VMOVUPD   Y13, 32(R11)
	VMOVUPD   Y14, 64(R11)
	VMOVUPD   Y15, 96(R11)
	VZEROUPPER
	RET

// func vecReluGradMulAVX2(o, gr, a *float32, n int)
TEXT ·vecReluGradMulAVX2(SB), NOSPLIT, $0-32
	MOVQ   o+0(FP), DI
	MOVQ   gr+8(FP), DX
	MOVQ   a+16(FP), SI
	MOVQ   n+24(FP), CX
	VXORPS Y15, Y15, Y15
	SHLQ   $2, CX
	XORQ   AX, AX

relugradAVX2_loop:
	VMOVUPS (SI)(AX*1), Y0
	VCMPPS  $0x1e, Y15, Y0, Y0
	VANDPS  (DX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     relugradAVX2_loop
	VZEROUPPER
	RET
// ---------------------------------------------------------------- AVX-512F, 16 lanes

// func vecGeluAVX512(o, a, tbl *float32, n int)
TEXT ·vecGeluAVX512(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

geluAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	GELU(Z0, Z1, Z2, Z3, Z4, Z5, Z6)
	VMOVUPS Z2, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     geluAVX512_loop
	VZEROUPPER
	RET

// func vecGeluGradMulAVX512(o, gr, a, tbl *float32, n int)
TEXT ·vecGeluGradMulAVX512(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ gr+8(FP), DX
	MOVQ a+16(FP), SI
	MOVQ tbl+24(FP), R9
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gelugradAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	GELUGRAD(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
	VMULPS  (DX)(AX*1), Z1, Z1
	VMOVUPS Z1, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     gelugradAVX512_loop
	VZEROUPPER
	RET

// func vecExpAVX512(o, a, tbl *float32, n int)
TEXT ·vecExpAVX512(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

expAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	EXP(Z0, Z1, Z2, Z3, Z4)
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     expAVX512_loop
	VZEROUPPER
	RET

// func vecExpSubSumAVX512(x, tbl *float32, n int, m float32, acc *[16]float32)
TEXT ·vecExpSubSumAVX512(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), DI
	MOVQ         tbl+8(FP), R9
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Z15
	MOVQ         acc+32(FP), R10
	SHLQ         $2, CX
	XORQ         AX, AX
	VMOVUPS      (R10), Z13

expsumAVX512_loop:
	VMOVUPS (DI)(AX*1), Z0
	VSUBPS  Z15, Z0, Z0
	EXP(Z0, Z1, Z2, Z3, Z4)
	VMOVUPS Z0, (DI)(AX*1)
	VADDPS  Z0, Z13, Z13
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     expsumAVX512_loop
	VMOVUPS Z13, (R10)
	VZEROUPPER
	RET

// func vecMaxAVX512(x *float32, n int, m float32) float32
TEXT ·vecMaxAVX512(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Z0
	VMOVAPS      Z0, Z1
	SHLQ         $2, CX
	XORQ         AX, AX

maxAVX512_loop:
	VMOVUPS (SI)(AX*1), Z2
	VMAXPS  Z0, Z2, Z0
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     maxAVX512_loop
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS  Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VPSHUFD      $1, X0, X1
	VMAXSS       X1, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func vecDotAVX512(a, b *float32, n int, acc *[16]float32)
TEXT ·vecDotAVX512(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DX
	MOVQ n+16(FP), CX
	MOVQ acc+24(FP), R10
	SHLQ $2, CX
	XORQ AX, AX
	VMOVUPS (R10), Z13

dotAVX512_loop:
	VMOVUPS     (SI)(AX*1), Z0
	VFMADD231PS (DX)(AX*1), Z0, Z13
	ADDQ        $64, AX
	CMPQ        AX, CX
	JLT         dotAVX512_loop
	VMOVUPS     Z13, (R10)
	VZEROUPPER
	RET

// func vecSoftmaxGradAVX512(o, gr, p *float32, n int, d, s float32)
TEXT ·vecSoftmaxGradAVX512(SB), NOSPLIT, $0-40
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), SI
	MOVQ         p+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS d+32(FP), Z14
	VBROADCASTSS s+36(FP), Z15
	SHLQ         $2, CX
	XORQ         AX, AX

smgradAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VSUBPS  Z14, Z0, Z0
	VMULPS  (DX)(AX*1), Z0, Z0
	VMULPS  Z15, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     smgradAVX512_loop
	VZEROUPPER
	RET

// func vecScaleAVX512(x *float32, n int, s float32)
TEXT ·vecScaleAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Z15
	SHLQ         $2, CX
	XORQ         AX, AX

scaleAVX512_loop:
	VMULPS  (DI)(AX*1), Z15, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     scaleAVX512_loop
	VZEROUPPER
	RET


// func vecAddAVX512(o, a, b *float32, n int)
TEXT ·vecAddAVX512(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

addAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VADDPS  (DX)(AX*1), Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     addAVX512_loop
	VZEROUPPER
	RET

// func vecReluAVX512(o, a, tbl *float32, n int)
TEXT ·vecReluAVX512(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

reluAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VMAXPS  C_ZERO, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     reluAVX512_loop
	VZEROUPPER
	RET

// func vecLNApplyAVX512(o, x, w, b *float32, n int, m, r float32)
TEXT ·vecLNApplyAVX512(SB), NOSPLIT, $0-48
	MOVQ         o+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	MOVQ         b+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Z14
	VBROADCASTSS r+44(FP), Z15
	SHLQ         $2, CX
	XORQ         AX, AX

lnapplyAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VSUBPS  Z14, Z0, Z0
	VMULPS  Z15, Z0, Z0
	VMULPS  (DX)(AX*1), Z0, Z0
	VADDPS  (R8)(AX*1), Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     lnapplyAVX512_loop
	VZEROUPPER
	RET

// func vecLNParamRowAVX512(sw, sb, gr, x *float32, n int, m, r float32)
TEXT ·vecLNParamRowAVX512(SB), NOSPLIT, $0-48
	MOVQ         sw+0(FP), DI
	MOVQ         sb+8(FP), R10
	MOVQ         gr+16(FP), DX
	MOVQ         x+24(FP), SI
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Z14
	VBROADCASTSS r+44(FP), Z15
	SHLQ         $2, CX
	XORQ         AX, AX

lnparamAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VSUBPS  Z14, Z0, Z0
	VMULPS  Z15, Z0, Z0
	VMOVUPS (DX)(AX*1), Z1
	VMULPS  Z1, Z0, Z0
	VADDPS  (DI)(AX*1), Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	VADDPS  (R10)(AX*1), Z1, Z1
	VMOVUPS Z1, (R10)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     lnparamAVX512_loop
	VZEROUPPER
	RET

// func vecLNGradRowAVX512(o, gr, x, w *float32, n int, m, r, sg, sgx float32)
TEXT ·vecLNGradRowAVX512(SB), NOSPLIT, $0-56
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), DX
	MOVQ         x+16(FP), SI
	MOVQ         w+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Z12
	VBROADCASTSS r+44(FP), Z13
	VBROADCASTSS sg+48(FP), Z14
	VBROADCASTSS sgx+52(FP), Z15
	SHLQ         $2, CX
	XORQ         AX, AX

lngradAVX512_loop:
	VMOVUPS (SI)(AX*1), Z0
	VSUBPS  Z12, Z0, Z0
	VMULPS  Z13, Z0, Z0
	VMULPS  Z15, Z0, Z0
	VMOVUPS (DX)(AX*1), Z1
	VMULPS  (R8)(AX*1), Z1, Z1
	VSUBPS  Z14, Z1, Z1
	VSUBPS  Z0, Z1, Z1
	VMULPS  Z13, Z1, Z1
	VMOVUPS Z1, (DI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     lngradAVX512_loop
	VZEROUPPER
	RET

// func vecSum64AVX512(x *float32, n int, acc *[16]float64)
TEXT ·vecSum64AVX512(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    acc+16(FP), R10
	VMOVUPD (R10), Z12
	VMOVUPD 64(R10), Z13
	SHLQ    $2, CX
	XORQ    AX, AX

sum64AVX512_loop:
	VCVTPS2PD (SI)(AX*1), Z0
	VADDPD    Z0, Z12, Z12
	VCVTPS2PD 32(SI)(AX*1), Z1
	VADDPD    Z1, Z13, Z13
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       sum64AVX512_loop
	VMOVUPD   Z12, (R10)
	VMOVUPD   Z13, 64(R10)
	VZEROUPPER
	RET

// func vecSumSqDev64AVX512(x *float32, n int, m float64, acc *[16]float64)
TEXT ·vecSumSqDev64AVX512(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSD m+16(FP), Z11
	MOVQ         acc+24(FP), R10
	VMOVUPD      (R10), Z12
	VMOVUPD      64(R10), Z13
	SHLQ         $2, CX
	XORQ         AX, AX

sumsq64AVX512_loop:
	VCVTPS2PD (SI)(AX*1), Z0
	VSUBPD    Z11, Z0, Z0
	VMULPD    Z0, Z0, Z0
	VADDPD    Z0, Z12, Z12
	VCVTPS2PD 32(SI)(AX*1), Z1
	VSUBPD    Z11, Z1, Z1
	VMULPD    Z1, Z1, Z1
	VADDPD    Z1, Z13, Z13
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       sumsq64AVX512_loop
	VMOVUPD   Z12, (R10)
	VMOVUPD   Z13, 64(R10)
	VZEROUPPER
	RET

// func vecLNGradSumsAVX512(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)
TEXT ·vecLNGradSumsAVX512(SB), NOSPLIT, $0-64
	MOVQ         gr+0(FP), DX
	MOVQ         w+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	VBROADCASTSD m+32(FP), Z14
	VBROADCASTSD r+40(FP), Z15
	MOVQ         sg+48(FP), R10
	MOVQ         sgx+56(FP), R11
	VMOVUPD      (R10), Z8
	VMOVUPD      64(R10), Z9
	VMOVUPD      (R11), Z10
	VMOVUPD      64(R11), Z11
	SHLQ         $2, CX
	XORQ         AX, AX

lnsumsAVX512_loop:
	VCVTPS2PD (DX)(AX*1), Z0
	VCVTPS2PD (R8)(AX*1), Z1
	VMULPD    Z1, Z0, Z0
	VADDPD    Z0, Z8, Z8
	VCVTPS2PD (SI)(AX*1), Z2
	VSUBPD    Z14, Z2, Z2
	VMULPD    Z15, Z2, Z2
	VMULPD    Z2, Z0, Z0
	VADDPD    Z0, Z10, Z10
	VCVTPS2PD 32(DX)(AX*1), Z3
	VCVTPS2PD 32(R8)(AX*1), Z4
	VMULPD    Z4, Z3, Z3
	VADDPD    Z3, Z9, Z9
	VCVTPS2PD 32(SI)(AX*1), Z5
	VSUBPD    Z14, Z5, Z5
	VMULPD    Z15, Z5, Z5
	VMULPD    Z5, Z3, Z3
	VADDPD    Z3, Z11, Z11
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       lnsumsAVX512_loop
	VMOVUPD   Z8, (R10)
	VMOVUPD   Z9, 64(R10)
	VMOVUPD   Z10, (R11)
	VMOVUPD   Z11, 64(R11)
	VZEROUPPER
	RET

// func vecReluGradMulAVX512(o, gr, a *float32, n int)
TEXT ·vecReluGradMulAVX512(SB), NOSPLIT, $0-32
	MOVQ   o+0(FP), DI
	MOVQ   gr+8(FP), DX
	MOVQ   a+16(FP), SI
	MOVQ   n+24(FP), CX
	VPXORD Z15, Z15, Z15
	SHLQ   $2, CX
	XORQ   AX, AX

relugradAVX512_loop:
	VMOVUPS   (SI)(AX*1), Z0
	VCMPPS    $0x1e, Z15, Z0, K1
	VMOVUPS.Z (DX)(AX*1), K1, Z1
	VMOVUPS   Z1, (DI)(AX*1)
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       relugradAVX512_loop
	VZEROUPPER
	RET
