//go:build cuda

package cuda

// These tests need a GPU. gorgonia.org/cu initialises the driver when the
// test binary starts and exits the process if that fails, so without a GPU
// they cannot even skip: build them with `go test -tags cuda -c` (make
// cuda-check does) and run the binary on a GPU machine (docs/gpu-status.md).

import (
	"encoding/binary"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

func openTest(t testing.TB) *Device {
	t.Helper()
	d, err := Open(0)
	if err != nil {
		t.Skipf("no usable GPU 0: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesf32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestOpenAndMemory(t *testing.T) {
	d := openTest(t)
	t.Logf("%s; PTX files %v", d.Name(), d.PTXFiles())
	if !strings.HasPrefix(d.Name(), "cuda:0 ") {
		t.Errorf("Name %q", d.Name())
	}
	free, total, err := d.MemInfo()
	if err != nil || free <= 0 || total < free {
		t.Fatalf("MemInfo %d %d %v", free, total, err)
	}
	const n = 1<<20 + 3 // not a multiple of anything
	p, err := d.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := d.DtoH(got, p); err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c != 0 {
			t.Fatalf("Alloc not zeroed at byte %d", i)
		}
	}
	src := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(src)
	if err := d.HtoD(p, src); err != nil {
		t.Fatal(err)
	}
	if err := d.DtoD(q+1, p, n-1); err != nil {
		t.Fatal(err)
	}
	if err := d.Memset0(q+100, 50); err != nil {
		t.Fatal(err)
	}
	if err := d.DtoH(got, q); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		want := src[i-1]
		if i >= 100 && i < 150 {
			want = 0
		}
		if got[i] != want {
			t.Fatalf("byte %d: got %d want %d", i, got[i], want)
		}
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	if err := d.Free(q); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(1 << 62); err == nil {
		t.Fatal("Alloc of 4 EiB succeeded")
	}
}

func TestLaunchErrors(t *testing.T) {
	d := openTest(t)
	one := Dim3{1, 1, 1}
	if err := d.Launch("no_such_kernel", one, one, 0); err == nil || !strings.Contains(err.Error(), "none of the embedded PTX") {
		t.Fatalf("unknown kernel: %v", err)
	}
	if err := d.Launch("gemm_f32_ff", Dim3{}, one, 0); err == nil {
		t.Fatal("empty grid accepted")
	}
	if err := d.Launch("gemm_f32_ff", one, one, 0, make([]uint64, MaxArgs+1)...); err == nil {
		t.Fatal("too many arguments accepted")
	}
	if err := d.Launch("gemm_f32_ff", one, Dim3{2048, 1, 1}, 0, make([]uint64, 16)...); err == nil {
		t.Fatal("a 2048-thread block was accepted")
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync after rejected launches: %v", err)
	}
}

// TestLaunchGemm runs kernels/gemm.cu's fp32 GEMM on a small odd-sized
// problem, which checks the launch path end to end: function lookup, and
// pointer, long long and double arguments each in its own 8-byte slot.
func TestLaunchGemm(t *testing.T) {
	d := openTest(t)
	const M, N, K = 37, 29, 45
	rng := rand.New(rand.NewSource(2))
	a, b := make([]float32, M*K), make([]float32, K*N)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64())
	}
	pa, _ := d.Alloc(4 * M * K)
	pb, _ := d.Alloc(4 * K * N)
	pc, err := d.Alloc(4 * M * N)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(pa, f32bytes(a)); err != nil {
		t.Fatal(err)
	}
	if err := d.HtoD(pb, f32bytes(b)); err != nil {
		t.Fatal(err)
	}
	i64 := func(n int) uint64 { return uint64(int64(n)) }
	f64 := func(x float64) uint64 { return math.Float64bits(x) }
	const alpha = 0.5
	// gemm_f32_ff(C, A, B, M, N, K, transA, transB, lda, ldb, ldc,
	// strideA, strideB, strideC, alpha, beta): 64×64 tiles, 16×16 threads.
	err = d.Launch("gemm_f32_ff", Dim3{(N + 63) / 64, (M + 63) / 64, 1}, Dim3{16, 16, 1}, 0,
		pc, pa, pb, i64(M), i64(N), i64(K), 0, 0, i64(K), i64(N), i64(N), 0, 0, 0, f64(alpha), f64(0))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4*M*N)
	if err := d.DtoH(out, pc); err != nil {
		t.Fatal(err)
	}
	c := bytesf32(out)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var want float64
			for k := 0; k < K; k++ {
				want += float64(a[i*K+k]) * float64(b[k*N+j])
			}
			want *= alpha
			// fp32 accumulation of K=45 unit-normal products: the error is
			// a few ulps of the partial sums (|sum| ≲ 3·√45 ≈ 20), far
			// below 1e-4 absolute; a wrong argument slot gives O(1) errors.
			if math.Abs(float64(c[i*N+j])-want) > 1e-4 {
				t.Fatalf("C[%d,%d] = %v, want %v", i, j, c[i*N+j], want)
			}
		}
	}
	for _, p := range []uint64{pa, pb, pc} {
		if err := d.Free(p); err != nil {
			t.Error(err)
		}
	}
}

func TestTimerAndConcurrentCallers(t *testing.T) {
	d := openTest(t)
	if err := d.StartTimer(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p, err := d.Alloc(4096)
				if err == nil {
					err = d.Memset0(p, 4096)
				}
				if err == nil {
					err = d.Free(p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	el, err := d.StopTimer()
	if err != nil || el < 0 {
		t.Fatalf("StopTimer %v %v", el, err)
	}
}

func TestCloseThenCall(t *testing.T) {
	d, err := Open(0)
	if err != nil {
		t.Skipf("no usable GPU 0: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Alloc(16); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Alloc after Close: %v", err)
	}
	if _, err := Open(1 << 20); err == nil {
		t.Fatal("Open of GPU 1048576 succeeded")
	}
}

// BenchmarkCallRoundTrip is the cost of the locked-thread design alone: one
// empty function through the channel and back.
func BenchmarkCallRoundTrip(b *testing.B) {
	d := openTest(b)
	nop := func() error { return nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.do(nop); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLaunch is the host cost of one kernel launch (a 1×1 GEMM, queued
// back to back, one Sync at the end, before the timer stops).
func BenchmarkLaunch(b *testing.B) {
	d := openTest(b)
	p, err := d.Alloc(256)
	if err != nil {
		b.Fatal(err)
	}
	args := []uint64{p, p + 64, p + 128, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, math.Float64bits(1), 0}
	one, blk := Dim3{1, 1, 1}, Dim3{16, 16, 1}
	if err := d.Launch("gemm_f32_ff", one, blk, 0, args...); err != nil {
		b.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Launch("gemm_f32_ff", one, blk, 0, args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}
