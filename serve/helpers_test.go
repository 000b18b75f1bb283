package serve_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
)

// tiny is a tiny random BERT folder and adapter files for it.
type tiny struct {
	dir string
	ck  *model.Checkpoint
	tok *tokenizer.Tokenizer
}

func newTiny(t testing.TB) *tiny {
	t.Helper()
	dir := t.TempDir()
	_, err := tinybert.Create(dir, tinybert.Sentiment)
	require.NoError(t, err)
	ck, err := model.LoadCheckpoint(dir)
	require.NoError(t, err)
	tok, err := tokenizer.Load(dir)
	require.NoError(t, err)
	return &tiny{dir: dir, ck: ck, tok: tok}
}

// taskKinds are the strategies the tests serve: three that share the
// backbone and two that need a model of their own.
var taskKinds = map[string]adapter.Strategy{
	"adapters":   {Name: adapter.StratAdapters, TrainLayerNorm: true},
	"adapters-x": {Name: adapter.StratAdapters},
	"layernorm":  {Name: adapter.StratLayerNorm},
	"head":       {Name: adapter.StratHead},
	"bitfit":     {Name: adapter.StratBitFit},
	"full":       {Name: adapter.StratFull},
}

// file returns an adapter file of strategy st whose trained tensors are
// random (seeded), so that every task answers differently, as trained ones do.
func (tb *tiny) file(t testing.TB, st adapter.Strategy, labels []string, seed uint64) *adapter.File {
	t.Helper()
	cfg := adapter.Default()
	cfg.Bottleneck = 4 + int(seed%3)
	if seed%2 == 1 {
		cfg.NonLinearity = "gelu"
	}
	nl := len(labels)
	if nl == 0 {
		nl = 1
	}
	desc := adapter.NewFile(tb.ck, st, &cfg, adapter.Head{Kind: adapter.HeadPooler, NumLabels: nl}, labels)
	m, err := trainer.NewModel(cpu.New(), tb.ck, desc, 4, 16, seed)
	require.NoError(t, err)
	defer m.Free()
	f, err := trainer.TrainedFile(m, desc)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(seed, 99))
	for i := range f.Tensors {
		for j := range f.Tensors[i].Data {
			f.Tensors[i].Data[j] += float32(r.NormFloat64() * 0.3)
		}
	}
	return f
}

// save writes f as dir/name.safetensors and returns the path.
func save(t testing.TB, dir, name string, f *adapter.File) string {
	t.Helper()
	path := filepath.Join(dir, name+".safetensors")
	require.NoError(t, adapter.Save(path, f))
	return path
}

// texts are inputs over the tiny vocabulary (unknown words become [UNK]).
var texts = []string{
	"a very good movie", "the plot was awful", "great acting", "a bad film", "not good", "the film is great",
	"awful awful acting", "a movie", "the acting was not bad", "good", "very very good film", "bad plot",
	"the movie was great and the acting was good", "is it a film", "zebra", "the plot is not awful",
}

// evaluate is what `train-gpu predict` computes for f over inputs: the
// model of f alone, batches in input order (trainer.Evaluate).
func (tb *tiny) evaluate(t testing.TB, f *adapter.File, in []string, maxLen int) *trainer.Predictions {
	t.Helper()
	m, err := trainer.NewModel(cpu.New(), tb.ck, f, 8, maxLen, 0)
	require.NoError(t, err)
	defer m.Free()
	ds := &trainer.Dataset{}
	for _, s := range in {
		ds.Examples = append(ds.Examples, trainer.Example{Text: s})
	}
	p, _, err := trainer.Evaluate(m, tb.tok, trainer.Tokenize(tb.tok, ds, maxLen), ds, 8, -1)
	require.NoError(t, err)
	return p
}

func mustRemove(t testing.TB, path string) {
	t.Helper()
	require.NoError(t, os.Remove(path))
}
