//go:build cuda

package gpu_test

// GPU benchmarks: every op of the backend at BERT-base and BERT-large
// shapes (batch 32, sequence 128, adapter bottleneck 64), named
// BenchmarkOp/gpu/<shape>/<op>, each reporting
//
//	GFLOP/s      useful floating-point work per GPU second (0 for data movement)
//	GB/s         minimum bytes the op must move per GPU second
//	%roofline    100 · max(flops/PeakFLOPS, bytes/PeakBW) / GPU time: how
//	             close the op is to this card's roofline for its arithmetic
//	             intensity, with the peaks gpu.DeviceInfo derives from the
//	             card's attributes (SM count, clocks, bus width; printed
//	             once as a GPU-PEAKS line)
//	gpu-us/op    CUDA-event time per op (the wall clock ns/op also counts the
//	             host's launch overhead)
//
// Every timed loop ends with a device Sync before the timer stops.
//
// Dtypes are the model's (model/bert.go): activations, activation gradients
// and frozen weights in the backend's FrozenDType (BF16 through Open);
// trainable tensors, parameter gradients, LayerNorm statistics and optimizer
// state in F32. In the byte counts, ew is a FrozenDType element and 4 an F32
// one.
//
//	make ptx && go test -tags cuda -run '^$' -bench . -benchtime 200x ./gpu/
//
// BenchmarkGemmCuBLAS runs the same GEMMs through cuBLAS (loaded at run time)
// for a side-by-side ratio; BenchmarkLaunchOverhead measures one launch.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/cuda"
	"github.com/houlsby/adapters/gpu"
)

var (
	benchOnce sync.Once
	benchBE   *gpu.Backend
	benchDev  *gpu.CUDA
	benchErr  error
	// The roofline's peaks (gpu.DeviceInfo: memory bandwidth from the
	// memory clock and bus width, the bf16 tensor-core rate from the SM
	// count, the SM clock and the architecture's rate per SM). peakFLOPS
	// is 0 for an architecture without a known rate: %roofline then
	// counts bytes only.
	peakFLOPS, peakBW float64
)

// benchBackend opens GPU 0 once per test binary (contexts are expensive).
func benchBackend(b *testing.B) (*gpu.Backend, backend.Backend, *gpu.CUDA) {
	b.Helper()
	benchOnce.Do(func() {
		d, err := cuda.Open(0)
		if err != nil {
			benchErr = err
			return
		}
		benchDev = gpu.CUDADevice(d)
		benchBE, benchErr = gpu.New(benchDev, gpu.Options{BF16: true})
		info := benchDev.Info(0)
		peakBW = info.PeakBandwidth()
		peakFLOPS, _ = info.PeakTensorFLOPS()
		js, _ := json.Marshal(map[string]any{"device": info, "peak_bandwidth_Bps": peakBW, "peak_bf16_flops": peakFLOPS, "peaks": info.Peaks()})
		fmt.Printf("GPU-PEAKS %s\n", js) // one line for gpu-verify.sh's report
	})
	if benchErr != nil {
		b.Skipf("no usable GPU: %v", benchErr)
	}
	return benchBE, benchBE, benchDev
}

// runBench times op at shape s and reports the metrics described at the top.
func runBench(b *testing.B, s benchShape, op benchOp) {
	gb, be, dev := benchBackend(b)
	x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(1))}
	defer x.free()
	call := op.setup(b, be, s)
	ew := float64(gb.FrozenDType().Size())
	// Warm up: module JIT, function lookup, first-touch of the memory.
	if err := call(); err != nil {
		b.Fatal(err)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := dev.StartTimer(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil { // before the timer stops
		b.Fatal(err)
	}
	b.StopTimer()
	gpu, err := dev.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	sec := gpu.Seconds() / float64(b.N)
	flops, bytes := op.flops(s, ew), op.bytes(s, ew)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(bytes/sec/1e9, "GB/s")
	b.ReportMetric(100*roofline(flops, bytes)/sec, "%roofline")
	b.ReportMetric(sec*1e6, "gpu-us/op")
}

// roofline is the least time in seconds the peaks allow for the work.
func roofline(flops, bytes float64) float64 {
	t := bytes / peakBW
	if peakFLOPS > 0 {
		t = max(t, flops/peakFLOPS)
	}
	return t
}

// BenchmarkOp times every op at every shape: BenchmarkOp/gpu/<shape>/<op>.
func BenchmarkOp(b *testing.B) {
	b.Run("gpu", func(b *testing.B) {
		for _, s := range benchShapes {
			b.Run(s.name, func(b *testing.B) {
				for _, op := range benchOps {
					b.Run(op.name, func(b *testing.B) { runBench(b, s, op) })
				}
			})
		}
	})
}

// BenchmarkLaunchOverhead measures the host cost of one launch of a tiny
// kernel (Scale over 256 elements) queued back to back, synced once at the
// end: ns/op is the launch rate limit of the locked-thread design, gpu-us/op
// the GPU time per kernel.
func BenchmarkLaunchOverhead(b *testing.B) {
	_, be, dev := benchBackend(b)
	x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(11))}
	defer x.free()
	t := x.t(backend.F32, 1, 256)
	if err := be.Scale(t, 1, 256); err != nil {
		b.Fatal(err)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := dev.StartTimer(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := be.Scale(t, 1, 256); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	gpu, err := dev.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(gpu.Nanoseconds())/1e3/float64(b.N), "gpu-us/op")
}

// BenchmarkGemmCuBLAS runs the forward GEMMs of BenchmarkOp through cuBLAS
// (cublasGemmEx, bf16 inputs, fp32 output and accumulation, the library's
// default algorithm), as the yardstick for gemm.cu:
// BenchmarkGemmCuBLAS/gpu/<shape>/<op>.
func BenchmarkGemmCuBLAS(b *testing.B) {
	b.Run("gpu", func(b *testing.B) {
		for _, s := range benchShapes {
			b.Run(s.name, func(b *testing.B) {
				for _, op := range benchOps {
					if len(op.name) < 5 || op.name[:5] != "gemm_" {
						continue
					}
					b.Run(op.name, func(b *testing.B) { runCuBLAS(b, s, op) })
				}
			})
		}
	})
}

var (
	cublasOnce sync.Once
	cublasH    *cuda.BLAS
	cublasErr  error
)

func runCuBLAS(b *testing.B, s benchShape, op benchOp) {
	_, be, dev := benchBackend(b)
	cublasOnce.Do(func() { cublasH, cublasErr = cuda.OpenBLAS(dev.D) })
	if cublasErr != nil {
		b.Skipf("cuBLAS unavailable: %v", cublasErr)
	}
	// Record the op's MatMul with its own setup, then give cuBLAS operands
	// of the same shapes: bf16 A and B, F32 C (gemm.cu writes a bf16 C at
	// the model's dtypes, so cuBLAS moves a little more memory here).
	rec := &gemmRecorder{Backend: be}
	call := op.setup(b, rec, s)
	if err := call(); err != nil {
		b.Fatal(err)
	}
	p := rec.last.p
	x := &bench{b: b, be: be, rng: rand.New(rand.NewSource(12))}
	defer x.free()
	aa := x.t(backend.BF16, 1, p.M*p.K).(*gpu.Tensor)
	bb := x.t(backend.BF16, 0.02, p.K*p.N).(*gpu.Tensor)
	cc := x.t(backend.F32, 0, p.M*p.N).(*gpu.Tensor)
	gemm := func() error {
		return cublasH.GemmBF16F32(uint64(cc.Ptr), uint64(aa.Ptr), uint64(bb.Ptr),
			p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, p.Beta)
	}
	if err := gemm(); err != nil {
		b.Fatal(err)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := dev.StartTimer(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := gemm(); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	gpu, err := dev.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	sec := gpu.Seconds() / float64(b.N)
	flops := op.flops(s, 2)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(100*roofline(flops, 0)/sec, "%roofline")
	b.ReportMetric(sec*1e6, "gpu-us/op")
}

// gemmRecorder is a backend.Backend that records the last Gemm's operands.
type gemmRecorder struct {
	backend.Backend
	last struct{ p backend.MatMul }
}

func (r *gemmRecorder) Gemm(c, a, b backend.Tensor, p backend.MatMul) error {
	r.last.p = p
	return nil
}
