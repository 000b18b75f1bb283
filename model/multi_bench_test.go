package model

import (
	"fmt"
	"testing"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
)

// BenchmarkMulti: one forward pass of 32 sequences × 128 tokens on
// all-MiniLM-L6-v2 through Multi, with four tasks (Houlsby adapters m = 64,
// 8 sequences each: mixed) and with one task (32 sequences: single), and
// the same batch through the task's own Model: what the mixed-task
// batches of serving cost beside single-task ones.
func BenchmarkMulti(b *testing.B) {
	testassets.Require(b, "make assets", testassets.ModelDir())
	ck, err := LoadCheckpoint(testassets.ModelDir())
	if err != nil {
		b.Fatal(err)
	}
	const B, T = 32, 128
	bt := &Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T)}
	for i := range bt.IDs {
		bt.IDs[i], bt.Mask[i] = int32(1000+(i*7919)%20000), 1
	}
	opts := &AdapterOptions{M: 64, Act: backend.ReLU, Attention: true, FFN: true}
	head := HeadOptions{Kind: HeadClassification, NumLabels: 2}
	spec := func(seed uint64) TaskSpec {
		m, err := New(cpu.New(), ck, Options{MaxBatch: 1, MaxSeq: 8, Adapter: &AdapterOptions{M: 64, Act: backend.ReLU, Attention: true, FFN: true, Init: InitNearIdentity, Seed: seed},
			Trainable: IsAdapter, Head: head, Seed: seed})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Free()
		s := TaskSpec{Adapter: opts, Head: head, Tensors: map[string][]float32{}}
		for _, p := range m.TrainableParams() {
			v := make([]float32, p.Len())
			if err := m.b.Download(v, p.T); err != nil {
				b.Fatal(err)
			}
			s.Tensors[p.Name] = v
		}
		return s
	}
	run := func(b *testing.B, step func()) {
		step()
		b.ResetTimer()
		cpu0 := processCPUSeconds()
		for i := 0; i < b.N; i++ {
			step()
		}
		b.ReportMetric(float64(B*b.N)/b.Elapsed().Seconds(), "seqs/s")
		b.ReportMetric((processCPUSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	}
	for _, tasks := range []int{4, 1} {
		b.Run(fmt.Sprintf("multi/tasks=%d/B%dxT%d", tasks, B, T), func(b *testing.B) {
			mt, err := NewMulti(cpu.New(), ck, MultiOptions{MaxBatch: B, MaxSeq: T})
			if err != nil {
				b.Fatal(err)
			}
			defer mt.Free()
			var runs []TaskRun
			for k := 0; k < tasks; k++ {
				id, err := mt.AddTask(spec(uint64(k + 1)))
				if err != nil {
					b.Fatal(err)
				}
				runs = append(runs, TaskRun{Task: id, Seqs: B / tasks})
			}
			run(b, func() {
				if _, err := mt.Forward(bt, runs); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	b.Run(fmt.Sprintf("model/B%dxT%d", B, T), func(b *testing.B) {
		m, err := New(cpu.New(), ck, Options{MaxBatch: B, MaxSeq: T, Adapter: opts, Trainable: IsAdapter, Head: head})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Free()
		run(b, func() {
			if _, _, err := m.Forward(bt, false, 0); err != nil {
				b.Fatal(err)
			}
		})
	})
}
