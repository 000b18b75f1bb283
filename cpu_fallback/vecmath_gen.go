//go:build ignore

// vecmath_gen.go writes vecmath_amd64.s: the kernel bodies of vecmath.go,
// once for AVX2+FMA (ymm registers, 32-byte steps, the 16-lane reductions
// as two ymm) and once for AVX-512F (zmm, 64-byte steps), from the same
// text with the register names substituted. `go generate` (the directive
// is in vecmath.go) runs it; TestVecKernelsMatchGo checks the result.
package main

import (
	"fmt"
	"os"
	"strings"
)

// constNames are the C_* names of the constant table, in the order of the
// vt* indices of vecmath.go (64 bytes each).
var constNames = []string{"HALF", "RSQRT2", "RSQRT2PI", "NEGHALF", "ONE", "ERFLO", "ERFHI", "A1", "A3", "A5", "A7", "A9", "A11", "A13", "B0", "B2", "B4", "B6", "B8", "EXPLO", "EXPHI", "LOG2E", "SHIFTER", "NEGC1", "NEGC2", "P0", "P1", "P2", "P3", "P4", "P5", "I127", "ZERO"}

const header = `//go:build amd64 && !purego

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

`

const macros = `
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

`

// Per instruction set: the elementwise kernels, then the reductions, whose
// accumulators differ (two ymm or one zmm).
const (
	kernelsHead = `// ---------------------------------------------------------------- {NAME}

// func vecGelu{S}(o, a, tbl *float32, n int)
TEXT ·vecGelu{S}(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gelu{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	GELU({R0}, {R1}, {R2}, {R3}, {R4}, {R5}, {R6})
	VMOVUPS {R2}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     gelu{S}_loop
	VZEROUPPER
	RET

// func vecGeluGradMul{S}(o, gr, a, tbl *float32, n int)
TEXT ·vecGeluGradMul{S}(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ gr+8(FP), DX
	MOVQ a+16(FP), SI
	MOVQ tbl+24(FP), R9
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gelugrad{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	GELUGRAD({R0}, {R1}, {R2}, {R3}, {R4}, {R5}, {R6}, {R7})
	VMULPS  (DX)(AX*1), {R1}, {R1}
	VMOVUPS {R1}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     gelugrad{S}_loop
	VZEROUPPER
	RET

// func vecExp{S}(o, a, tbl *float32, n int)
TEXT ·vecExp{S}(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

exp{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	EXP({R0}, {R1}, {R2}, {R3}, {R4})
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     exp{S}_loop
	VZEROUPPER
	RET

// func vecExpSubSum{S}(x, tbl *float32, n int, m float32, acc *[16]float32)
TEXT ·vecExpSubSum{S}(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), DI
	MOVQ         tbl+8(FP), R9
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), {R15}
	MOVQ         acc+32(FP), R10
	SHLQ         $2, CX
	XORQ         AX, AX
`
	expSumTwoYmm = `	VMOVUPS      (R10), Y13
	VMOVUPS      32(R10), Y14

expsum{S}_loop:
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
	JLT     expsum{S}_loop
	VMOVUPS Y13, (R10)
	VMOVUPS Y14, 32(R10)
	VZEROUPPER
	RET
`
	expSumOneZmm = `	VMOVUPS      (R10), Z13

expsum{S}_loop:
	VMOVUPS (DI)(AX*1), Z0
	VSUBPS  Z15, Z0, Z0
	EXP(Z0, Z1, Z2, Z3, Z4)
	VMOVUPS Z0, (DI)(AX*1)
	VADDPS  Z0, Z13, Z13
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     expsum{S}_loop
	VMOVUPS Z13, (R10)
	VZEROUPPER
	RET
`
	maxHead = `
// func vecMax{S}(x *float32, n int, m float32) float32
TEXT ·vecMax{S}(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), {R0}
	VMOVAPS      {R0}, {R1}
	SHLQ         $2, CX
	XORQ         AX, AX

max{S}_loop:
`
	maxTwoYmm = `	VMOVUPS (SI)(AX*1), Y2
	VMAXPS  Y0, Y2, Y0
	VMOVUPS 32(SI)(AX*1), Y3
	VMAXPS  Y1, Y3, Y1
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     max{S}_loop
	VMAXPS  Y1, Y0, Y0
`
	maxOneZmm = `	VMOVUPS (SI)(AX*1), Z2
	VMAXPS  Z0, Z2, Z0
	ADDQ    $64, AX
	CMPQ    AX, CX
	JLT     max{S}_loop
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS  Y1, Y0, Y0
`
	maxTailAndDot = `	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VPSHUFD      $1, X0, X1
	VMAXSS       X1, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func vecDot{S}(a, b *float32, n int, acc *[16]float32)
TEXT ·vecDot{S}(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DX
	MOVQ n+16(FP), CX
	MOVQ acc+24(FP), R10
	SHLQ $2, CX
	XORQ AX, AX
`
	dotTwoYmm = `	VMOVUPS (R10), Y13
	VMOVUPS 32(R10), Y14

dot{S}_loop:
	VMOVUPS     (SI)(AX*1), Y0
	VFMADD231PS (DX)(AX*1), Y0, Y13
	VMOVUPS     32(SI)(AX*1), Y1
	VFMADD231PS 32(DX)(AX*1), Y1, Y14
	ADDQ        $64, AX
	CMPQ        AX, CX
	JLT         dot{S}_loop
	VMOVUPS     Y13, (R10)
	VMOVUPS     Y14, 32(R10)
	VZEROUPPER
	RET
`
	dotOneZmm = `	VMOVUPS (R10), Z13

dot{S}_loop:
	VMOVUPS     (SI)(AX*1), Z0
	VFMADD231PS (DX)(AX*1), Z0, Z13
	ADDQ        $64, AX
	CMPQ        AX, CX
	JLT         dot{S}_loop
	VMOVUPS     Z13, (R10)
	VZEROUPPER
	RET
`
	kernelsTail = `
// func vecSoftmaxGrad{S}(o, gr, p *float32, n int, d, s float32)
TEXT ·vecSoftmaxGrad{S}(SB), NOSPLIT, $0-40
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), SI
	MOVQ         p+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS d+32(FP), {R14}
	VBROADCASTSS s+36(FP), {R15}
	SHLQ         $2, CX
	XORQ         AX, AX

smgrad{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VSUBPS  {R14}, {R0}, {R0}
	VMULPS  (DX)(AX*1), {R0}, {R0}
	VMULPS  {R15}, {R0}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     smgrad{S}_loop
	VZEROUPPER
	RET

// func vecScale{S}(x *float32, n int, s float32)
TEXT ·vecScale{S}(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), {R15}
	SHLQ         $2, CX
	XORQ         AX, AX

scale{S}_loop:
	VMULPS  (DI)(AX*1), {R15}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     scale{S}_loop
	VZEROUPPER
	RET

`
)

// Elementwise kernels without fused multiply-adds (their Go loops are
// bitwise equal as written, so tails need no padding): sums, ReLU and the
// LayerNorm rows.
const plainKernels = `
// func vecAdd{S}(o, a, b *float32, n int)
TEXT ·vecAdd{S}(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

add{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VADDPS  (DX)(AX*1), {R0}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     add{S}_loop
	VZEROUPPER
	RET

// func vecRelu{S}(o, a, tbl *float32, n int)
TEXT ·vecRelu{S}(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ tbl+16(FP), R9
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

relu{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VMAXPS  C_ZERO, {R0}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     relu{S}_loop
	VZEROUPPER
	RET

// func vecLNApply{S}(o, x, w, b *float32, n int, m, r float32)
TEXT ·vecLNApply{S}(SB), NOSPLIT, $0-48
	MOVQ         o+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	MOVQ         b+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), {R14}
	VBROADCASTSS r+44(FP), {R15}
	SHLQ         $2, CX
	XORQ         AX, AX

lnapply{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VSUBPS  {R14}, {R0}, {R0}
	VMULPS  {R15}, {R0}, {R0}
	VMULPS  (DX)(AX*1), {R0}, {R0}
	VADDPS  (R8)(AX*1), {R0}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     lnapply{S}_loop
	VZEROUPPER
	RET

// func vecLNParamRow{S}(sw, sb, gr, x *float32, n int, m, r float32)
TEXT ·vecLNParamRow{S}(SB), NOSPLIT, $0-48
	MOVQ         sw+0(FP), DI
	MOVQ         sb+8(FP), R10
	MOVQ         gr+16(FP), DX
	MOVQ         x+24(FP), SI
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), {R14}
	VBROADCASTSS r+44(FP), {R15}
	SHLQ         $2, CX
	XORQ         AX, AX

lnparam{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VSUBPS  {R14}, {R0}, {R0}
	VMULPS  {R15}, {R0}, {R0}
	VMOVUPS (DX)(AX*1), {R1}
	VMULPS  {R1}, {R0}, {R0}
	VADDPS  (DI)(AX*1), {R0}, {R0}
	VMOVUPS {R0}, (DI)(AX*1)
	VADDPS  (R10)(AX*1), {R1}, {R1}
	VMOVUPS {R1}, (R10)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     lnparam{S}_loop
	VZEROUPPER
	RET

// func vecLNGradRow{S}(o, gr, x, w *float32, n int, m, r, sg, sgx float32)
TEXT ·vecLNGradRow{S}(SB), NOSPLIT, $0-56
	MOVQ         o+0(FP), DI
	MOVQ         gr+8(FP), DX
	MOVQ         x+16(FP), SI
	MOVQ         w+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), {R12}
	VBROADCASTSS r+44(FP), {R13}
	VBROADCASTSS sg+48(FP), {R14}
	VBROADCASTSS sgx+52(FP), {R15}
	SHLQ         $2, CX
	XORQ         AX, AX

lngrad{S}_loop:
	VMOVUPS (SI)(AX*1), {R0}
	VSUBPS  {R12}, {R0}, {R0}
	VMULPS  {R13}, {R0}, {R0}
	VMULPS  {R15}, {R0}, {R0}
	VMOVUPS (DX)(AX*1), {R1}
	VMULPS  (R8)(AX*1), {R1}, {R1}
	VSUBPS  {R14}, {R1}, {R1}
	VSUBPS  {R0}, {R1}, {R1}
	VMULPS  {R13}, {R1}, {R1}
	VMOVUPS {R1}, (DI)(AX*1)
	ADDQ    ${STEP}, AX
	CMPQ    AX, CX
	JLT     lngrad{S}_loop
	VZEROUPPER
	RET
`

// The 16-lane reductions of the LayerNorm rows, all in float64: element i
// goes to lane i mod 16, the AVX2 kernels in four ymm of 4 doubles, the
// AVX-512 ones in two zmm of 8 (lanes16Sum64 combines them).
const lnSumsYmm = `
// func vecSum64{S}(x *float32, n int, acc *[16]float64)
TEXT ·vecSum64{S}(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    acc+16(FP), R10
	VMOVUPD (R10), Y12
	VMOVUPD 32(R10), Y13
	VMOVUPD 64(R10), Y14
	VMOVUPD 96(R10), Y15
	SHLQ    $2, CX
	XORQ    AX, AX

sum64{S}_loop:
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
	JLT       sum64{S}_loop
	VMOVUPD   Y12, (R10)
	VMOVUPD   Y13, 32(R10)
	VMOVUPD   Y14, 64(R10)
	VMOVUPD   Y15, 96(R10)
	VZEROUPPER
	RET

// func vecSumSqDev64{S}(x *float32, n int, m float64, acc *[16]float64)
TEXT ·vecSumSqDev64{S}(SB), NOSPLIT, $0-32
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

sumsq64{S}_loop:
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
	JLT       sumsq64{S}_loop
	VMOVUPD   Y12, (R10)
	VMOVUPD   Y13, 32(R10)
	VMOVUPD   Y14, 64(R10)
	VMOVUPD   Y15, 96(R10)
	VZEROUPPER
	RET

// func vecLNGradSums{S}(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)
TEXT ·vecLNGradSums{S}(SB), NOSPLIT, $0-64
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

lnsums{S}_loop:
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
	JLT       lnsums{S}_loop
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

// func vecReluGradMul{S}(o, gr, a *float32, n int)
TEXT ·vecReluGradMul{S}(SB), NOSPLIT, $0-32
	MOVQ   o+0(FP), DI
	MOVQ   gr+8(FP), DX
	MOVQ   a+16(FP), SI
	MOVQ   n+24(FP), CX
	VXORPS Y15, Y15, Y15
	SHLQ   $2, CX
	XORQ   AX, AX

relugrad{S}_loop:
	VMOVUPS (SI)(AX*1), Y0
	VCMPPS  $0x1e, Y15, Y0, Y0
	VANDPS  (DX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     relugrad{S}_loop
	VZEROUPPER
	RET
`

const lnSumsZmm = `
// func vecSum64{S}(x *float32, n int, acc *[16]float64)
TEXT ·vecSum64{S}(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    acc+16(FP), R10
	VMOVUPD (R10), Z12
	VMOVUPD 64(R10), Z13
	SHLQ    $2, CX
	XORQ    AX, AX

sum64{S}_loop:
	VCVTPS2PD (SI)(AX*1), Z0
	VADDPD    Z0, Z12, Z12
	VCVTPS2PD 32(SI)(AX*1), Z1
	VADDPD    Z1, Z13, Z13
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       sum64{S}_loop
	VMOVUPD   Z12, (R10)
	VMOVUPD   Z13, 64(R10)
	VZEROUPPER
	RET

// func vecSumSqDev64{S}(x *float32, n int, m float64, acc *[16]float64)
TEXT ·vecSumSqDev64{S}(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSD m+16(FP), Z11
	MOVQ         acc+24(FP), R10
	VMOVUPD      (R10), Z12
	VMOVUPD      64(R10), Z13
	SHLQ         $2, CX
	XORQ         AX, AX

sumsq64{S}_loop:
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
	JLT       sumsq64{S}_loop
	VMOVUPD   Z12, (R10)
	VMOVUPD   Z13, 64(R10)
	VZEROUPPER
	RET

// func vecLNGradSums{S}(gr, w, x *float32, n int, m, r float64, sg, sgx *[16]float64)
TEXT ·vecLNGradSums{S}(SB), NOSPLIT, $0-64
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

lnsums{S}_loop:
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
	JLT       lnsums{S}_loop
	VMOVUPD   Z8, (R10)
	VMOVUPD   Z9, 64(R10)
	VMOVUPD   Z10, (R11)
	VMOVUPD   Z11, 64(R11)
	VZEROUPPER
	RET

// func vecReluGradMul{S}(o, gr, a *float32, n int)
TEXT ·vecReluGradMul{S}(SB), NOSPLIT, $0-32
	MOVQ   o+0(FP), DI
	MOVQ   gr+8(FP), DX
	MOVQ   a+16(FP), SI
	MOVQ   n+24(FP), CX
	VPXORD Z15, Z15, Z15
	SHLQ   $2, CX
	XORQ   AX, AX

relugrad{S}_loop:
	VMOVUPS   (SI)(AX*1), Z0
	VCMPPS    $0x1e, Z15, Z0, K1
	VMOVUPS.Z (DX)(AX*1), K1, Z1
	VMOVUPS   Z1, (DI)(AX*1)
	ADDQ      $64, AX
	CMPQ      AX, CX
	JLT       relugrad{S}_loop
	VZEROUPPER
	RET
`

func isa(b *strings.Builder, name, reg string, step int, suffix string) {
	two := reg == "Y"
	pairs := []string{"{NAME}", name, "{S}", suffix, "{STEP}", fmt.Sprint(step)}
	for i := 15; i >= 0; i-- {
		pairs = append(pairs, fmt.Sprintf("{R%d}", i), fmt.Sprintf("%s%d", reg, i))
	}
	r := strings.NewReplacer(pairs...)
	pick := func(y, z string) string {
		if two {
			return y
		}
		return z
	}
	for _, s := range []string{kernelsHead, pick(expSumTwoYmm, expSumOneZmm), maxHead, pick(maxTwoYmm, maxOneZmm),
		maxTailAndDot, pick(dotTwoYmm, dotOneZmm), kernelsTail, plainKernels, pick(lnSumsYmm, lnSumsZmm)} {
		b.WriteString(r.Replace(s))
	}
}

func main() {
	var b strings.Builder
	b.WriteString(header)
	for i, c := range constNames {
		fmt.Fprintf(&b, "#define C_%s %d(R9)\n", c, i*64)
	}
	b.WriteString(macros)
	isa(&b, "AVX2 + FMA, 8 lanes (16-lane reductions as two ymm)", "Y", 32, "AVX2")
	isa(&b, "AVX-512F, 16 lanes", "Z", 64, "AVX512")
	if err := os.WriteFile("vecmath_amd64.s", []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
