// Package cpu is the pure-Go, float32 backend (no cgo). It implements
// backend.Backend and the optional capabilities (backend.FusedAdapter,
// backend.FusedAttention and backend.PackedAttention, for every size) on
// all cores, and is the
// reference every other backend is checked against (tests/conformance runs
// against it, and it against the float64 oracle tests/ref64).
//
// Design:
//
//   - Tensors (*Tensor) keep float32 elements in Data (I32 in Ints); views
//     alias their parent's slice. BF16 and F16 tensors are stored as float32
//     values rounded to that precision by Upload and Copy; ops compute in
//     float32 and do not round their results. FrozenDType is F32.
//   - Every matrix product goes through sgemm (gemm.go), with the AVX2 or
//     AVX-512 micro-kernel by a static rule (gemmKernelFor; the kernels are
//     bitwise equal). Attention runs two sgemm calls per (batch, head)
//     reading Q, K and V in place through the leading dimension 3C; the
//     packed attention (packed_attention.go) runs tiles of 48 (forward) or
//     96 (backward) queries by 128 keys with an online softmax and keeps
//     no T×T matrix; the fused
//     adapter is three to five sgemm calls around row-parallel bias and
//     activation passes.
//   - Arguments are validated before any work: a bad size, dtype, short or
//     freed tensor, id or label out of range gives an error naming the op
//     and the argument; nothing is written. Panics are reserved for bugs.
//   - Deterministic: every reduction runs in an order fixed by the sizes
//     alone (per-row sums, column blocks summed over rows in order, fixed
//     1024-element blocks for SumSquares), never by the number of cores, so
//     results are bitwise identical across runs and GOMAXPROCS values.
//   - Allocation-free after warm-up: parallel regions run on a persistent
//     worker pool (parallel.go) over task structs kept in the Backend, and
//     scratch buffers are kept in the Backend, grown on demand. A Backend
//     serialises its calls with a mutex, so it may be shared by goroutines.
//   - Transcendentals are float32 vector kernels (vecmath.go): exp
//     (Cephes: Cody–Waite reduction and a degree-5 minimax polynomial,
//     ≤ 1.01 ulp) for the softmax, GELU' and swish, and Eigen's rational
//     erf (|error| ≤ 4.5e-7) for GELU, in AVX2 and AVX-512 assembly and
//     plain Go, all bitwise equal, so the instruction set never changes a
//     result.
package cpu
