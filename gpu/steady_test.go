package gpu_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/gpu/emu"
	"github.com/houlsby/adapters/model"
)

// smallCheckpoint is a random 2-layer BERT (C=24, 4 heads, F=40, vocabulary
// 50): shapes only matter here, so values are small uniform numbers.
func smallCheckpoint(seed int64) *model.Checkpoint {
	cfg := model.DefaultConfig()
	cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.IntermediateSize = 24, 2, 4, 40
	cfg.VocabSize, cfg.MaxPositionEmbeddings, cfg.TypeVocabSize = 50, 16, 2
	r := rand.New(rand.NewSource(seed))
	ck := &model.Checkpoint{Config: cfg, Tensors: map[string]model.HostTensor{}, HasPooler: true}
	put := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Float64()-0.5) * 0.4
		}
		ck.Tensors[name] = model.HostTensor{Shape: shape, Data: v}
	}
	C, F := cfg.HiddenSize, cfg.IntermediateSize
	lin := func(name string, out, in int) { put(name+".weight", out, in); put(name+".bias", out) }
	ln := func(name string) { put(name+".weight", C); put(name+".bias", C) }
	put("embeddings.word_embeddings.weight", cfg.VocabSize, C)
	put("embeddings.position_embeddings.weight", cfg.MaxPositionEmbeddings, C)
	put("embeddings.token_type_embeddings.weight", cfg.TypeVocabSize, C)
	ln("embeddings.LayerNorm")
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("encoder.layer.%d.", l)
		lin(p+"attention.self.query", C, C)
		lin(p+"attention.self.key", C, C)
		lin(p+"attention.self.value", C, C)
		lin(p+"attention.output.dense", C, C)
		ln(p + "attention.output.LayerNorm")
		lin(p+"intermediate.dense", F, C)
		lin(p+"output.dense", C, F)
		ln(p + "output.LayerNorm")
	}
	lin("pooler.dense", C, C)
	return ck
}

// TestTrainingStepSteadyState runs training steps (forward with dropout,
// loss, backward, AdamW on every trainable tensor) of a small BERT with
// Houlsby adapters on the gpu backend over the emulator, and checks the
// pool: after the first step no step reaches Device.Alloc, and the live
// device memory does not grow (nothing leaks per step). Batches change size
// (B ≤ MaxBatch, T ≤ MaxSeq) as a data loader's last batch does.
func TestTrainingStepSteadyState(t *testing.T) {
	dev := emu.New()
	if p, err := dev.Alloc(16); err != nil {
		t.Skipf("emulator unavailable: %v", err)
	} else if err := dev.Free(p); err != nil {
		t.Fatal(err)
	}
	for _, bf16 := range []bool{false, true} {
		t.Run(fmt.Sprint("bf16=", bf16), func(t *testing.T) {
			g, err := gpu.New(emu.New(), gpu.Options{BF16: bf16})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			m, err := model.New(g, smallCheckpoint(1), model.Options{
				MaxBatch: 3, MaxSeq: 9,
				Adapter: &model.AdapterOptions{M: 5, Act: backend.ReLU, Attention: true, FFN: true, Init: "near_identity", Seed: 2},
				Head:    model.HeadOptions{Kind: model.HeadClassification, NumLabels: 3},
				Seed:    3,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			type moments struct{ m, v, decay backend.Tensor }
			opt := map[string]moments{}
			for _, p := range m.Params() {
				if p.Grad == nil {
					continue
				}
				mm, err1 := g.Alloc(backend.F32, p.Grad.Len())
				vv, err2 := g.Alloc(backend.F32, p.Grad.Len())
				dd, err3 := g.Alloc(backend.I32, 2)
				if err1 != nil || err2 != nil || err3 != nil {
					t.Fatal(err1, err2, err3)
				}
				if err := g.UploadInt32(dd, []int32{0, int32(p.Grad.Len())}); err != nil {
					t.Fatal(err)
				}
				opt[p.Name] = moments{mm, vv, dd}
			}
			if len(opt) == 0 {
				t.Fatal("no trainable tensors")
			}
			r := rand.New(rand.NewSource(4))
			var first, last gpu.PoolStats
			for step := 1; step <= 4; step++ {
				B, T := 3, 9
				if step%2 == 0 {
					B, T = 2, 6 // a short last batch
				}
				bt := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
				for i := range bt.IDs {
					bt.IDs[i] = int32(r.Intn(50))
					bt.Mask[i] = 1
				}
				bt.Mask[B*T-1] = 0
				for i := range bt.Labels {
					bt.Labels[i] = int32(r.Intn(3))
				}
				if _, _, err := m.Forward(bt, true, uint64(step)); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if err := m.Backward(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				for _, p := range m.Params() {
					if p.Grad == nil {
						continue
					}
					o := opt[p.Name]
					h := backend.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: step}
					if err := g.AdamWStep(p.T, p.Grad, o.m, o.v, o.decay, p.Grad.Len(), h); err != nil {
						t.Fatalf("step %d AdamW %s: %v", step, p.Name, err)
					}
					if err := g.Zero(p.Grad); err != nil {
						t.Fatal(err)
					}
				}
				if err := g.Sync(); err != nil {
					t.Fatal(err)
				}
				if step == 2 { // both batch shapes seen
					first = g.PoolStats()
				}
				last = g.PoolStats()
			}
			t.Logf("pool after step 2: %+v; after step 4: %+v", first, last)
			if last.DeviceAllocs != first.DeviceAllocs {
				t.Errorf("steps 3-4 allocated on the device: %d → %d device allocations", first.DeviceAllocs, last.DeviceAllocs)
			}
			if last.LiveBytes != first.LiveBytes {
				t.Errorf("live device memory changed between steps: %d → %d bytes", first.LiveBytes, last.LiveBytes)
			}
		})
	}
}
