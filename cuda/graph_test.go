//go:build cuda

package cuda

import (
	"math"
	"testing"
)

// TestGraphCaptureReplay captures a zeroing, a GEMM (gemm_f32_ff, alpha 1)
// and a device copy of its result, checks that capturing ran nothing,
// launches the graph, then patches the GEMM's alpha to 2 and launches it
// again: C and its copy must follow.
func TestGraphCaptureReplay(t *testing.T) {
	d := openTest(t)
	if err := GraphAPI(); err != nil {
		t.Fatal(err)
	}
	const M, N, K = 33, 20, 17
	a, b := make([]float32, M*K), make([]float32, K*N)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	pa, _ := d.Alloc(4 * M * K)
	pb, _ := d.Alloc(4 * K * N)
	pc, _ := d.Alloc(4 * M * N)
	pd, err := d.Alloc(4 * M * N)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(pa, f32bytes(a)); err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(pb, f32bytes(b)); err != nil {
		t.Fatal(err)
	}
	gemmArgs := func(alpha float64) []uint64 {
		return []uint64{pc, pa, pb, M, N, K, 0, 0, K, N, N, 0, 0, 0, math.Float64bits(alpha), 0}
	}
	ops := []GraphOp{
		{Kind: OpMemset0, Dst: pc, Bytes: 4 * M * N},
		{Kind: OpLaunch, Kernel: "gemm_f32_ff", Grid: Dim3{1, 1, 1}, Block: Dim3{16, 16, 1}, Args: gemmArgs(1)},
		{Kind: OpDtoD, Dst: pd, Src: pc, Bytes: 4 * M * N},
	}
	g, err := d.NewGraph(ops)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := g.Destroy(); err != nil {
			t.Error(err)
		}
	}()
	check := func(what string, alpha float32) {
		t.Helper()
		for _, p := range []uint64{pc, pd} {
			out := make([]byte, 4*M*N)
			if err := d.DtoH(out, p); err != nil {
				t.Fatal(err)
			}
			c := bytesf32(out)
			for i := 0; i < M; i++ {
				for j := 0; j < N; j++ {
					var want float32
					for k := 0; k < K; k++ {
						want += a[i*K+k] * b[k*N+j] // small integers: exact
					}
					if c[i*N+j] != alpha*want {
						t.Fatalf("%s: C[%d,%d] = %v, want %v", what, i, j, c[i*N+j], alpha*want)
					}
				}
			}
		}
	}
	zero := make([]byte, 4*M*N)
	if err := d.HtoD(pd, zero); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4*M*N)
	if err := d.DtoH(out, pd); err != nil {
		t.Fatal(err)
	}
	if bytesf32(out)[1] != 0 {
		t.Fatal("capturing ran the operations")
	}
	if err := g.Launch(); err != nil {
		t.Fatal(err)
	}
	check("first launch", 1)
	if err := g.SetArgs(1, gemmArgs(2)); err != nil {
		t.Fatal(err)
	}
	if err := g.Launch(); err != nil {
		t.Fatal(err)
	}
	check("after SetArgs", 2)
	if err := g.SetArgs(0, nil); err == nil {
		t.Error("SetArgs of a zeroing accepted")
	}
	if err := g.SetArgs(1, gemmArgs(2)[:3]); err == nil {
		t.Error("SetArgs with too few arguments accepted")
	}
}
