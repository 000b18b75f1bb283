package model

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
)

// TestCLSDenseHeadValues: the cls_dense head (AdapterHub's default
// classification head) computes logits = Wc·tanh(Wd·h_[CLS] + bd) + bc on
// its own head.dense tensors (checked in float64 against a host
// computation), lists them as created head tensors after the pooler's place,
// and never loads the checkpoint's pooler.
func TestCLSDenseHeadValues(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), true, 21)
	m := newTiny(t, &backend64{}, ck, Options{Seed: 4, Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: PoolingCLSDense}})
	require.Nil(t, m.Param(NamePoolerWeight), "cls_dense must not load the checkpoint's pooler")
	dw, db := m.Param(NameHeadDenseWeight), m.Param(NameHeadDenseBias)
	require.NotNil(t, dw)
	require.NotNil(t, db)
	assert.True(t, dw.Trainable && db.Trainable, "head.dense is new and trains")
	randomizeTrainable(t, m, 8) // non-zero biases
	bt := tinyBatch(false)
	bt.Labels = nil
	_, logits, err := m.Forward(bt, false, 0)
	require.NoError(t, err)
	h := f(m.acts[m.L-1].out)
	W, bd := f(dw.T), f(db.T)
	Wc, bc := f(m.Param(NameClassifierWeight).T), f(m.Param(NameClassifierBias).T)
	C, T, K := m.C, bt.T, 3
	for b := 0; b < bt.B; b++ {
		pooled := make([]float64, C)
		for o := 0; o < C; o++ {
			s := bd[o]
			for i := 0; i < C; i++ {
				s += W[o*C+i] * h[(b*T)*C+i]
			}
			pooled[o] = math.Tanh(s)
		}
		for k := 0; k < K; k++ {
			want := bc[k]
			for i := 0; i < C; i++ {
				want += Wc[k*C+i] * pooled[i]
			}
			// backend64 computes in float64 but Forward returns float32
			// logits (relative rounding 6e-8); 1e-5 is margin on that, while
			// a wrong weight, bias or a missing tanh moves a logit by O(0.1).
			assert.InDelta(t, want, float64(logits[b*K+k]), 1e-5*math.Max(1, math.Abs(want)), "logit [%d,%d]", b, k)
		}
	}
	specs := Tensors(tinyConfig(), true, nil, &HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: PoolingCLSDense})
	var tail []string
	for _, s := range specs[len(specs)-4:] {
		tail = append(tail, s.Name+"/"+s.Category.String())
	}
	assert.Equal(t, []string{"head.dense.weight/head", "head.dense.bias/head", "classifier.weight/head", "classifier.bias/head"}, tail)
	assert.Equal(t, "head", TensorSpec{Name: NameHeadDenseBias}.Group())
}

// TestCLSDenseDropoutSites: with dropout on, the cls_dense head draws two
// masks (before head.dense and before the classifier) that change with the
// seed and repeat for the same seed.
func TestCLSDenseDropoutSites(t *testing.T) {
	ck := randomCheckpoint(tinyConfig(), false, 22)
	m := newTiny(t, cpu.New(), ck, Options{Seed: 4, Head: HeadOptions{Kind: HeadClassification, NumLabels: 3, Pooling: PoolingCLSDense}})
	bt := tinyBatch(false)
	run := func(seed uint64) []float32 {
		_, l, err := m.Forward(bt, true, seed)
		require.NoError(t, err)
		return append([]float32(nil), l...)
	}
	a, b, a2 := run(1), run(2), run(1)
	assert.Equal(t, a, a2, "same seed, same masks")
	assert.NotEqual(t, a, b, "another seed, other masks")
	_, evalLogits, err := m.Forward(bt, false, 0)
	require.NoError(t, err)
	assert.NotEqual(t, a, evalLogits, "dropout acts in training")
}

// TestInitBERT: AdapterHub's "bert" initialisation draws W_down and W_up
// from N(0, 0.02²) and zeroes the biases; the other initialisations are
// unchanged by its addition (InitZero's W_up stays 0, and its W_down keeps
// its bits, see TestDefaultInitUnchanged).
func TestInitBERT(t *testing.T) {
	cfg := tinyConfig()
	cfg.HiddenSize, cfg.NumHiddenLayers = 64, 1
	ck := randomCheckpoint(cfg, true, 5)
	o := &AdapterOptions{M: 32, Act: backend.Swish, Attention: true, FFN: true, Init: InitBERT, Seed: 7}
	m := newTiny(t, cpu.New(), ck, Options{Adapter: o})
	for _, ffn := range []bool{false, true} {
		pre := AdapterPrefix(0, ffn)
		for _, w := range []string{AdapterDownWeight, AdapterUpWeight} {
			v := download(t, m.b, m.Param(pre+w).T)
			var s2, mx float64
			for _, x := range v {
				s2 += float64(x) * float64(x)
				mx = math.Max(mx, math.Abs(float64(x)))
			}
			std := math.Sqrt(s2 / float64(len(v)))
			// 2048 draws: the sample std is within ~3·0.02/√(2·2048) = 1e-3
			// of 0.02; a normal (not truncated at 2σ) has draws beyond 0.04.
			assert.InDelta(t, 0.02, std, 1.5e-3, "%s std", pre+w)
			assert.Greater(t, mx, 0.04, "%s is not truncated at 2σ", pre+w)
		}
		for _, bn := range []string{AdapterDownBias, AdapterUpBias} {
			for _, x := range download(t, m.b, m.Param(pre+bn).T) {
				require.Zero(t, x, "%s", pre+bn)
			}
		}
	}
	bad := *o
	bad.Init = "houlsby"
	_, err := New(cpu.New(), ck, Options{Adapter: &bad, Head: classification(2)})
	assert.ErrorContains(t, err, `unknown adapter init "houlsby"`)
}

// TestDefaultInitUnchanged pins the zero initialisation's first values (the
// default path must stay bitwise what it was before InitBERT and the
// cls_dense head were added).
func TestDefaultInitUnchanged(t *testing.T) {
	o := &AdapterOptions{M: 4, Act: backend.ReLU, Attention: true, FFN: true, Seed: 42}
	spec := TensorSpec{Name: AdapterPrefix(2, true) + AdapterDownWeight, Shape: []int{4, 8}}
	v := adapterInit(o, spec)
	up := adapterInit(o, TensorSpec{Name: AdapterPrefix(2, true) + AdapterUpWeight, Shape: []int{8, 4}})
	for _, x := range up {
		require.Zero(t, x)
	}
	got := []uint32{math.Float32bits(v[0]), math.Float32bits(v[1]), math.Float32bits(v[31])}
	assert.Equal(t, []uint32{0x3d15fd7d, 0x3d20967a, 0xbba9b98b}, got, "measured on the code before InitBERT existed")
}
