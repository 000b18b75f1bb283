package tests

// AdapterHub interoperability on the real model and 500 real texts, both
// ways (goldens: tests/ref/gen_adapterhub.py, `make goldens`):
//
//   - adapters trained here (the paper's setup and the adapterhub-houlsby
//     preset, by train-gpu) and exported with `train-gpu export --format
//     adapterhub` give, in AdapterHub (adapters 1.3.0, BertAdapterModel,
//     load_adapter), the logits our model gives from the adapter file;
//   - adapters trained by AdapterHub (DoubleSeqBnConfig with its default
//     head; an FFN-only ReLU adapter on 4 of 6 layers with a head on the
//     pooler), saved by its save_adapter as safetensors and as torch.save
//     files, give here the logits AdapterHub gives.
//
// Tolerance: the criterion, max |difference| < 1e-4 over the 500
// texts' logits. Both sides compute in float32 with different kernels;
// tests/encoder_parity_test.go measures hidden states within 5e-6 after
// six layers, and the logits are a dot product of those with O(0.1)
// weights. A wrong tensor name, transpose, head mapping, LayerNorm or
// activation moves logits by 1e-2 or more (go-paper without its side file:
// see the log).

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/testassets"
	"github.com/houlsby/adapters/interop"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
	"github.com/houlsby/adapters/trainer"
)

const ahiTol = 1e-4

type ahiBatch struct {
	ids, types, mask []int32
	index            []int32
	B, T             int
}

// ahiSetup skips loudly without the goldens and returns the checkpoint,
// the 500 texts' batches and AdapterHub's logits.
func ahiSetup(t *testing.T) (string, *model.Checkpoint, []ahiBatch, *safetensors.File) {
	t.Helper()
	dir := testassets.Path("tests", "golden", "adapterhub")
	testassets.Require(t, "make assets goldens", testassets.ModelDir(), dir+"/texts.safetensors", dir+"/logits.safetensors")
	ck, err := model.LoadCheckpoint(testassets.ModelDir())
	require.NoError(t, err)
	tf := tsOpen(t, dir+"/texts.safetensors")
	var batches []ahiBatch
	n := 0
	for k := 0; ; k++ {
		p := fmt.Sprintf("batch%d.", k)
		if _, ok := tf.Info(p + "input_ids"); !ok {
			break
		}
		ids, shape := readInt32(t, tf, p+"input_ids")
		types, _ := readInt32(t, tf, p+"token_type_ids")
		mask, _ := readInt32(t, tf, p+"attention_mask")
		index, _ := readInt32(t, tf, p+"index")
		batches = append(batches, ahiBatch{ids: ids, types: types, mask: mask, index: index, B: shape[0], T: shape[1]})
		n += shape[0]
	}
	require.Equal(t, 500, n, "texts")
	return dir, ck, batches, tsOpen(t, dir+"/logits.safetensors")
}

// ahiLogits runs f on ck over the batches (no dropout) and returns the
// logits in text order (500 × labels).
func ahiLogits(t *testing.T, ck *model.Checkpoint, f *adapter.File, batches []ahiBatch) []float32 {
	t.Helper()
	maxB, maxT := 0, 0
	for _, b := range batches {
		maxB, maxT = max(maxB, b.B), max(maxT, b.T)
	}
	m, err := trainer.NewModel(cpu.New(), ck, f, maxB, maxT, 0)
	require.NoError(t, err)
	defer m.Free()
	K := m.NumLabels()
	out := make([]float32, 500*K)
	for _, b := range batches {
		_, logits, err := m.Forward(&model.Batch{IDs: b.ids, TypeIDs: b.types, Mask: b.mask, B: b.B, T: b.T}, false, 0)
		require.NoError(t, err)
		for r, i := range b.index {
			copy(out[int(i)*K:(int(i)+1)*K], logits[r*K:(r+1)*K])
		}
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestAdapterHubLoadsOurAdapters: our logits from the adapter file against
// AdapterHub's from the exported folder; and the folder reads back here as
// the very file it came from.
func TestAdapterHubLoadsOurAdapters(t *testing.T) {
	dir, ck, batches, logitsF := ahiSetup(t)
	for _, name := range []string{"go-paper", "go-preset"} {
		t.Run(name, func(t *testing.T) {
			file, err := interop.LoadAdapter(dir+"/"+name+"/adapter.safetensors", ck)
			require.NoError(t, err)
			folder, err := interop.LoadAdapter(dir+"/"+name+"/adapterhub", ck)
			require.NoError(t, err)
			assert.Equal(t, file.Adapter, folder.Adapter)
			assert.Equal(t, file.Strategy, folder.Strategy)
			assert.Equal(t, file.Head, folder.Head)
			assert.Equal(t, file.Labels, folder.Labels)
			assert.Equal(t, file.Tensors, folder.Tensors, "the export round-trips bit for bit")
			want := readF32(t, logitsF, name)
			got := ahiLogits(t, ck, file, batches)
			d := maxAbsDiff(got, want)
			t.Logf("%s: max |go - adapterhub| over %d logits: %.3g (tol %g)", name, len(want), d, ahiTol)
			assert.Less(t, d, ahiTol)
			if name == "go-paper" {
				noSide := readF32(t, logitsF, name+"-no-side")
				t.Logf("go-paper in AdapterHub without the side file's LayerNorms: max |diff| %.3g", maxAbsDiff(noSide, want))
			}
		})
	}
}

// TestWeLoadAdapterHubAdapters: AdapterHub's folders (safetensors and
// torch.save) load here and give AdapterHub's logits.
func TestWeLoadAdapterHubAdapters(t *testing.T) {
	dir, ck, batches, logitsF := ahiSetup(t)
	safe, err := interop.LoadAdapter(dir+"/ah-houlsby-safe", ck)
	require.NoError(t, err)
	bin, err := interop.LoadAdapter(dir+"/ah-houlsby-bin", ck)
	require.NoError(t, err)
	assert.Equal(t, safe.Tensors, bin.Tensors, "pytorch_adapter.bin and pytorch_model_head.bin (restricted unpickler) hold the safetensors' values")
	assert.Equal(t, adapter.HeadCLSDense, safe.Head.Kind)
	assert.Equal(t, []string{"ham", "spam"}, safe.Labels)
	assert.Equal(t, adapter.Config{ReductionFactor: 16, NonLinearity: "swish", Init: adapter.InitBERT, Placement: adapter.PlaceHoulsby}, *safe.Adapter)
	variant, err := interop.LoadAdapter(dir+"/ah-variant", ck)
	require.NoError(t, err)
	assert.Equal(t, adapter.HeadPooler, variant.Head.Kind)
	assert.Equal(t, adapter.Config{ReductionFactor: 12, NonLinearity: "relu", Init: adapter.InitBERT, Placement: adapter.PlaceFFN, Layers: []int{2, 3, 4, 5}}, *variant.Adapter)
	for _, c := range []struct {
		name string
		f    *adapter.File
	}{{"ah-houlsby", safe}, {"ah-variant", variant}} {
		want := readF32(t, logitsF, c.name)
		d := maxAbsDiff(ahiLogits(t, ck, c.f, batches), want)
		t.Logf("%s: max |go - adapterhub| over %d logits: %.3g (tol %g)", c.name, len(want), d, ahiTol)
		assert.Less(t, d, ahiTol, c.name)
	}
}
