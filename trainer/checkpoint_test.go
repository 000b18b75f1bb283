package trainer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/houlsby/adapters/adapter"
)

func tinyCheckpoint(t *testing.T) *Checkpoint {
	t.Helper()
	a := adapter.Default()
	a.Bottleneck = 2
	f := &adapter.File{
		Adapter: &a, Strategy: adapter.Strategy{Name: adapter.StratAdapters, TrainLayerNorm: false},
		Head: adapter.Head{Kind: adapter.HeadCLS, NumLabels: 2}, Labels: []string{"ham", "spam"},
		BaseFingerprint: "fp1", BaseHasPooler: true,
		Base: adapter.Base{HiddenSize: 4, NumHiddenLayers: 1, NumAttentionHeads: 1, IntermediateSize: 8, VocabSize: 5, MaxPositionEmbeddings: 6, TypeVocabSize: 2},
	}
	exp, err := f.Expected()
	if err != nil {
		t.Fatal(err)
	}
	c := &Checkpoint{Adapter: f, M: map[string][]float32{}, V: map[string][]float32{}, Config: "[train]\nseed = 1\n"}
	for i, s := range exp {
		n := int(s.NumElements())
		d, m, v := make([]float32, n), make([]float32, n), make([]float32, n)
		for j := range d {
			d[j], m[j], v[j] = float32(i*100+j), float32(j)/7, float32(j)/9
		}
		f.Tensors = append(f.Tensors, adapter.Tensor{Name: s.Name, Shape: s.Shape, Data: d})
		c.M[s.Name], c.V[s.Name] = m, v
	}
	g := NewRNG(3)
	g.Uint64()
	c.State = State{Step: 17, Epoch: 1, Batch: 4, RNG: g.State(), Seed: 3, Schedule: NewSchedule(1e-3, 100, 0.1), Best: 0.93, BestStep: 10, BadEvals: 1, NonFinite: 2}
	return c
}

func TestCheckpointRoundTrip(t *testing.T) {
	c := tinyCheckpoint(t)
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	d, err := LoadCheckpoint(path, "fp1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.State, d.State) || c.Config != d.Config || !reflect.DeepEqual(c.M, d.M) || !reflect.DeepEqual(c.V, d.V) {
		t.Errorf("state/moments differ:\n%+v\n%+v", c.State, d.State)
	}
	got := map[string][]float32{}
	for _, x := range d.Adapter.Tensors {
		got[x.Name] = x.Data
	}
	for _, x := range c.Adapter.Tensors {
		if !reflect.DeepEqual(got[x.Name], x.Data) {
			t.Errorf("%s differs", x.Name)
		}
	}
	// The restored RNG continues the saved stream.
	a, b := NewRNG(0), NewRNG(3)
	if err := a.Restore(d.State.RNG); err != nil {
		t.Fatal(err)
	}
	b.Uint64()
	if a.Uint64() != b.Uint64() {
		t.Error("RNG state not restored")
	}
	if _, err := LoadCheckpoint(path, "fp2"); err == nil || !strings.Contains(err.Error(), "made for base model") {
		t.Errorf("other base: %v", err)
	}
	// An adapter file is not a checkpoint.
	ap := filepath.Join(t.TempDir(), "a.safetensors")
	if err := adapter.Save(ap, c.Adapter); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(ap, ""); err == nil || !strings.Contains(err.Error(), "not a checkpoint") {
		t.Errorf("adapter file as checkpoint: %v", err)
	}
	// Missing moments are refused when saving.
	delete(c.V, c.Adapter.Tensors[0].Name)
	if err := SaveCheckpoint(filepath.Join(t.TempDir(), "x"), c); err == nil || !strings.Contains(err.Error(), "adam_v/") {
		t.Errorf("missing moment: %v", err)
	}
}

// Overwriting a checkpoint leaves only the complete new file (atomic
// rename, no temporary left behind).
func TestCheckpointOverwrite(t *testing.T) {
	c := tinyCheckpoint(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	for step := 1; step <= 3; step++ {
		c.State.Step = step
		if err := SaveCheckpoint(path, c); err != nil {
			t.Fatal(err)
		}
	}
	d, err := LoadCheckpoint(path, "")
	if err != nil || d.State.Step != 3 {
		t.Fatalf("%v %+v", err, d)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the directory", len(ents))
	}
}
