package serve_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/serve"
)

// softmax is `train-gpu predict`'s probability computation.
func softmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	ps := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		ps[i] = math.Exp(float64(v) - mx)
		sum += ps[i]
	}
	for i := range ps {
		ps[i] /= sum
	}
	return ps
}

// TestPredictMatchesAlone: tasks of every strategy, requested concurrently
// (so batches mix tasks and lengths), answer as each task alone does
// through trainer.Evaluate (what `train-gpu predict` runs).
func TestPredictMatchesAlone(t *testing.T) {
	tb := newTiny(t)
	var mixed, instance atomic.Int32
	p, err := serve.NewFromCheckpoint(cpu.New(), tb.ck, tb.tok, serve.Options{MaxLength: 16, MaxBatchRows: 8, MaxWait: 5 * time.Millisecond,
		OnBatch: func(s serve.BatchStats) {
			if s.Shared && s.Tasks > 1 {
				mixed.Add(1)
			}
			if !s.Shared {
				instance.Add(1)
			}
		}})
	require.NoError(t, err)
	defer p.Close(context.Background())
	labels := map[string][]string{}
	want := map[string][][]float32{}
	seed := uint64(1)
	for name, st := range taskKinds {
		l := []string{"neg", "pos"}
		if name == "layernorm" {
			l = []string{"a", "b", "c"}
		}
		f := tb.file(t, st, l, seed)
		seed++
		require.NoError(t, p.Add(name, f))
		labels[name] = l
		want[name] = tb.evaluate(t, f, texts, 16).Logits
	}
	reg := tb.file(t, taskKinds["adapters"], nil, 42)
	require.NoError(t, p.Add("score", reg))
	want["score"] = tb.evaluate(t, reg, texts, 16).Logits

	names := []string{"score"}
	for n := range taskKinds {
		names = append(names, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := 0; c < 12; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for k := 0; k < 6; k++ {
				name := names[r.IntN(len(names))]
				n := 1 + r.IntN(3)
				idx := make([]int, n)
				in := make([]serve.Input, n)
				for i := range in {
					idx[i] = r.IntN(len(texts))
					in[i] = serve.Input{Text: texts[idx[i]]}
				}
				preds, err := p.Predict(context.Background(), name, in)
				if err != nil {
					errs <- err
					return
				}
				for i, pr := range preds {
					w := want[name][idx[i]]
					if name == "score" {
						if math.Abs(*pr.Value-float64(w[0])) > 1e-6 {
							errs <- fmt.Errorf("%s %q: value %v, alone %v", name, texts[idx[i]], *pr.Value, w[0])
						}
						continue
					}
					ps := softmax(w)
					best := 0
					for j := range w {
						if w[j] > w[best] {
							best = j
						}
					}
					if pr.Label != labels[name][best] {
						errs <- fmt.Errorf("%s %q: label %s, alone %s", name, texts[idx[i]], pr.Label, labels[name][best])
					}
					for j, l := range labels[name] {
						if math.Abs(pr.Probabilities[l]-ps[j]) > 1e-6 {
							errs <- fmt.Errorf("%s %q: p(%s) = %v, alone %v", name, texts[idx[i]], l, pr.Probabilities[l], ps[j])
						}
					}
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Positive(t, mixed.Load(), "batches mixing tasks on the shared backbone")
	assert.Positive(t, instance.Load(), "batches of tasks with their own model")
	for _, info := range p.Tasks() {
		want := info.Strategy != "bitfit" && info.Strategy != "full"
		assert.Equal(t, want, info.SharesBackbone, info.Name)
		assert.Positive(t, info.MemoryBytes, info.Name)
	}
	assert.Positive(t, p.BackboneBytes())
}

func TestPredictErrors(t *testing.T) {
	tb := newTiny(t)
	p, err := serve.NewFromCheckpoint(cpu.New(), tb.ck, tb.tok, serve.Options{MaxLength: 16, MaxQueue: 4})
	require.NoError(t, err)
	require.NoError(t, p.Add("a", tb.file(t, taskKinds["head"], []string{"x", "y"}, 3)))
	ctx := context.Background()
	_, err = p.Predict(ctx, "nope", []serve.Input{{Text: "good"}})
	assert.ErrorIs(t, err, serve.ErrUnknownTask)
	_, err = p.Predict(ctx, "a", nil)
	assert.ErrorIs(t, err, serve.ErrBadInput)
	_, err = p.Predict(ctx, "a", []serve.Input{{Text: "good"}, {Text: ""}})
	assert.ErrorIs(t, err, serve.ErrBadInput)
	_, err = p.Predict(ctx, "a", make([]serve.Input, 5))
	assert.ErrorIs(t, err, serve.ErrBadInput)
	require.NoError(t, p.Close(ctx))
	_, err = p.Predict(ctx, "a", []serve.Input{{Text: "good"}})
	assert.True(t, errors.Is(err, serve.ErrClosed) || errors.Is(err, serve.ErrUnknownTask), "after Close: %v", err)
}
