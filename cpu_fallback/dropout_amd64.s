//go:build amd64 && !purego

#include "textflag.h"

// dropoutAVX512 is dropoutApply's loop on 16 elements per step (contract:
// dropoutKernel in dropout_amd64.go): eight 64-bit lanes of SplitMix64 per
// zmm, twice, with AVX512DQ's VPMULLQ for the 64-bit multiplies. Integer
// arithmetic is exact, so the kept elements are exactly backend.DropoutKeep's.

DATA dropk<>+0(SB)/8, $0x9e3779b97f4a7c15  // SplitMix64 increment (golden ratio)
DATA dropk<>+8(SB)/8, $0xbf58476d1ce4e5b9  // first multiplier
DATA dropk<>+16(SB)/8, $0x94d049bb133111eb // second multiplier
DATA dropk<>+24(SB)/8, $16                 // index step per iteration
DATA dropk<>+32(SB)/8, $0                  // lane offsets 0..7
DATA dropk<>+40(SB)/8, $1
DATA dropk<>+48(SB)/8, $2
DATA dropk<>+56(SB)/8, $3
DATA dropk<>+64(SB)/8, $4
DATA dropk<>+72(SB)/8, $5
DATA dropk<>+80(SB)/8, $6
DATA dropk<>+88(SB)/8, $7
DATA dropk<>+96(SB)/8, $8                  // offset of the second half
GLOBL dropk<>(SB), RODATA|NOPTR, $104

// SPLITMIX(X, T): X = splitmix64(X) lane-wise; Z20 = increment, Z21, Z22 =
// multipliers. Clobbers T.
#define SPLITMIX(X, T) \
	VPADDQ  Z20, X, X;   \
	VPSRLQ  $30, X, T;   \
	VPXORQ  T, X, X;     \
	VPMULLQ Z21, X, X;   \
	VPSRLQ  $27, X, T;   \
	VPXORQ  T, X, X;     \
	VPMULLQ Z22, X, X;   \
	VPSRLQ  $31, X, T;   \
	VPXORQ  T, X, X

// KEEP(I, X, T, K): K = lanes with splitmix64(seed ^ splitmix64(I)) >> 40 >=
// thr (Z23 = seed, Z24 = thr). Clobbers X, T.
#define KEEP(I, X, T, K) \
	VMOVDQA64 I, X;           \
	SPLITMIX(X, T);           \
	VPXORQ    Z23, X, X;      \
	SPLITMIX(X, T);           \
	VPSRLQ    $40, X, X;      \
	VPCMPUQ   $5, Z24, X, K

// func dropoutAVX512(dst, src *float32, n int, base int, seed uint64, thr uint32, s float32)
TEXT ·dropoutAVX512(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VPBROADCASTQ base+24(FP), Z0
	VPBROADCASTQ seed+32(FP), Z23
	MOVL         thr+40(FP), AX
	VPBROADCASTQ AX, Z24
	VBROADCASTSS s+44(FP), Z25
	VPBROADCASTQ dropk<>+0(SB), Z20
	VPBROADCASTQ dropk<>+8(SB), Z21
	VPBROADCASTQ dropk<>+16(SB), Z22
	VPBROADCASTQ dropk<>+24(SB), Z26
	VPADDQ       dropk<>+32(SB), Z0, Z0  // indices of elements 0..7
	VPBROADCASTQ dropk<>+96(SB), Z1
	VPADDQ       Z0, Z1, Z1              // elements 8..15
	SHLQ         $2, CX
	XORQ         AX, AX

drop_loop:
	KEEP(Z0, Z2, Z3, K1)
	KEEP(Z1, Z4, Z5, K2)
	KUNPCKBW     K1, K2, K3
	VMULPS.Z     (SI)(AX*1), Z25, K3, Z6
	VMOVUPS      Z6, (DI)(AX*1)
	VPADDQ       Z26, Z0, Z0
	VPADDQ       Z26, Z1, Z1
	ADDQ         $64, AX
	CMPQ         AX, CX
	JLT          drop_loop
	VZEROUPPER
	RET

// func dropoutPairAVX512(dst, src, dst2, src2 *float32, n int, base int, seed uint64, thr uint32, s float32)
// dropoutAVX512 applied to two arrays with one hash per element: dst = src
// and dst2 = src2 under the same mask (an attention backward's P̃ and dP).
TEXT ·dropoutPairAVX512(SB), NOSPLIT, $0-64
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         dst2+16(FP), R8
	MOVQ         src2+24(FP), R9
	MOVQ         n+32(FP), CX
	VPBROADCASTQ base+40(FP), Z0
	VPBROADCASTQ seed+48(FP), Z23
	MOVL         thr+56(FP), AX
	VPBROADCASTQ AX, Z24
	VBROADCASTSS s+60(FP), Z25
	VPBROADCASTQ dropk<>+0(SB), Z20
	VPBROADCASTQ dropk<>+8(SB), Z21
	VPBROADCASTQ dropk<>+16(SB), Z22
	VPBROADCASTQ dropk<>+24(SB), Z26
	VPADDQ       dropk<>+32(SB), Z0, Z0
	VPBROADCASTQ dropk<>+96(SB), Z1
	VPADDQ       Z0, Z1, Z1
	SHLQ         $2, CX
	XORQ         AX, AX

drop2_loop:
	KEEP(Z0, Z2, Z3, K1)
	KEEP(Z1, Z4, Z5, K2)
	KUNPCKBW     K1, K2, K3
	VMULPS.Z     (SI)(AX*1), Z25, K3, Z6
	VMOVUPS      Z6, (DI)(AX*1)
	VMULPS.Z     (R9)(AX*1), Z25, K3, Z7
	VMOVUPS      Z7, (R8)(AX*1)
	VPADDQ       Z26, Z0, Z0
	VPADDQ       Z26, Z1, Z1
	ADDQ         $64, AX
	CMPQ         AX, CX
	JLT          drop2_loop
	VZEROUPPER
	RET
