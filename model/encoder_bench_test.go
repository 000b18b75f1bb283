package model

import (
	"fmt"
	"strings"
	"testing"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
)

// BenchmarkEncoder times the real all-MiniLM-L6-v2 encoder on the CPU
// backend at B=32, T=128 (every token real): evaluation forward, and one
// adapter training step (forward with dropout + backward, adapters m=64 and
// LayerNorms trainable). It reports tokens/s; tests/ref/bench_encoder.py
// measures PyTorch on the same shapes (docs/benchmarks.md, encoder section). It also
// reports the process CPU time per step, which a busy shared machine
// disturbs far less than wall time.
//
//	go test ./model -run '^$' -bench BenchmarkEncoder -benchtime 1x -count 5
func BenchmarkEncoder(b *testing.B) {
	testassets.Require(b, "make assets", testassets.ModelDir())
	ck, err := LoadCheckpoint(testassets.ModelDir())
	if err != nil {
		b.Fatal(err)
	}
	const B, T = 32, 128
	bt := &Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for i := range bt.IDs {
		bt.IDs[i] = int32(1000 + (i*7919)%20000) // arbitrary in-vocabulary ids
		bt.Mask[i] = 1
	}
	for i := range bt.Labels {
		bt.Labels[i] = int32(i % 2)
	}
	for _, c := range []struct {
		name  string
		train bool
	}{{"forward", false}, {"train-step-adapters", true}} {
		b.Run(fmt.Sprintf("cpu/%s/B%dxT%d", c.name, B, T), func(b *testing.B) {
			be := cpu.New()
			o := Options{MaxBatch: B, MaxSeq: T, Head: HeadOptions{Kind: HeadClassification, NumLabels: 2},
				Trainable: func(string) bool { return false }}
			if c.train {
				o.Adapter = &AdapterOptions{M: 64, Act: backend.ReLU, Attention: true, FFN: true}
				o.Trainable = func(n string) bool { return strings.Contains(n, ".adapter.") || strings.Contains(n, "LayerNorm") }
			}
			m, err := New(be, ck, o)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Free()
			step := func(i int) {
				if _, _, err := m.Forward(bt, c.train, uint64(i)); err != nil {
					b.Fatal(err)
				}
				if c.train {
					if err := m.Backward(); err != nil {
						b.Fatal(err)
					}
				}
				if err := be.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			step(0) // warm-up: views, scratch
			b.ResetTimer()
			cpu0 := processCPUSeconds()
			for i := 0; i < b.N; i++ {
				step(i)
			}
			cpuS := processCPUSeconds() - cpu0
			b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
			// CPU seconds per step (all threads): robust to other load on a
			// shared machine, where wall time is not.
			b.ReportMetric(cpuS/float64(b.N), "cpu-s/op")
		})
	}
}
