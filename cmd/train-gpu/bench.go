package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

const benchHelp = `
Usage: train-gpu bench --model DIR [flags]

Times training steps and inference of the adapted model on random token ids,
and prints examples/s and tokens/s. A training step is exactly the trainer's
(trainer.Learner.Step): forward, loss, backward, global gradient norm,
clipping, and the AdamW update of every trainable tensor.
`

// benchOptions are bench's flags.
type benchOptions struct {
	modelDir, device, strategy       string
	ordinal, batch, seqLen, steps, m int
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchHelp, stdout)
	var o benchOptions
	fs.StringVar(&o.modelDir, "model", "", "the base model folder (required)")
	fs.StringVar(&o.device, "device", "auto", "auto, cpu or cuda")
	fs.IntVar(&o.ordinal, "gpu", 0, "CUDA device ordinal")
	fs.IntVar(&o.batch, "batch-size", 32, "batch size")
	fs.IntVar(&o.seqLen, "seq-len", 128, "tokens per example")
	fs.IntVar(&o.steps, "steps", 10, "timed steps (after 2 warmup steps)")
	fs.StringVar(&o.strategy, "strategy", "adapters", "strategy: "+strings.Join(adapter.Strategies, ", "))
	fs.IntVar(&o.m, "bottleneck", 64, "adapter bottleneck m")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if o.modelDir == "" {
		fs.Usage()
		return errUsage
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"--batch-size", o.batch}, {"--seq-len", o.seqLen}, {"--steps", o.steps}, {"--bottleneck", o.m}} {
		if v.v < 1 {
			return fmt.Errorf("%s %d: must be positive", v.name, v.v)
		}
	}
	ck, f, err := benchModel(o)
	if err != nil {
		return err
	}
	be, err := openDevice(o.device, o.ordinal, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bench: %s, B=%d T=%d, device %s\n", o.strategy, o.batch, o.seqLen, be.Name())
	m, err := trainer.NewModel(be, ck, f, o.batch, o.seqLen, 1)
	if err != nil {
		return err
	}
	defer m.Free()
	l, err := trainer.NewLearner(m, 0.01)
	if err != nil {
		return err
	}
	defer l.Free()
	b := benchBatch(o.batch, o.seqLen, ck.Config.VocabSize)
	for _, mode := range []struct {
		name  string
		train bool
	}{{"train step (trainer.Learner.Step)", true}, {"inference (forward)", false}} {
		sec, err := timeSteps(l, b, mode.train, o.steps)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-38s %8.1f ms/step  %8.1f examples/s  %9.0f tokens/s\n", mode.name, 1000*sec, float64(b.B)/sec, float64(b.B*b.T)/sec)
	}
	return nil
}

// benchModel loads the checkpoint and describes the benchmarked model: the
// strategy (top_k trains one layer), Houlsby adapters of bottleneck o.m, a
// two-class pooler head.
func benchModel(o benchOptions) (*model.Checkpoint, *adapter.File, error) {
	ck, err := model.LoadCheckpoint(o.modelDir)
	if err != nil {
		return nil, nil, err
	}
	if o.seqLen > ck.Config.MaxPositionEmbeddings {
		return nil, nil, fmt.Errorf("--seq-len %d exceeds the model's max_position_embeddings %d", o.seqLen, ck.Config.MaxPositionEmbeddings)
	}
	a := adapter.Default()
	a.Bottleneck = o.m
	f := &adapter.File{Strategy: adapter.Strategy{Name: o.strategy, TopK: 1, TrainLayerNorm: true}, Head: adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2},
		Labels: []string{"0", "1"}, BaseFingerprint: ck.Fingerprint, Base: adapter.BaseOf(ck.Config), BaseHasPooler: ck.HasPooler}
	if f.Strategy.UsesAdapters() {
		f.Adapter = &a
	}
	if _, err := adapter.Count(f.Plan()); err != nil {
		return nil, nil, err
	}
	return ck, f, nil
}

// benchBatch is a batch of random token ids (above the special tokens of
// BERT's vocabulary) without padding, and random binary labels.
func benchBatch(B, T, vocab int) *model.Batch {
	g := trainer.NewRNG(1)
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Mask: make([]int32, B*T), Labels: make([]int32, B)}
	for i := range b.IDs {
		b.IDs[i], b.Mask[i] = int32(1000+g.IntN(vocab-1000)), 1
	}
	for i := range b.Labels {
		b.Labels[i] = int32(g.IntN(2))
	}
	return b
}

// timeSteps returns the mean seconds of steps training steps (Learner.Step
// at a tiny LR, dropout on, clipping at 1) or forward passes, after two
// untimed warmup steps, synchronising the device before each clock read.
func timeSteps(l *trainer.Learner, b *model.Batch, train bool, steps int) (float64, error) {
	be := l.Model.Backend()
	var el time.Duration
	for s := 0; s < 2+steps; s++ {
		t0 := time.Now()
		var err error
		if train {
			_, err = l.Step(b, trainer.StepOptions{LR: 1e-5, ClipNorm: 1, Dropout: true, Seed: uint64(s)})
		} else {
			_, _, err = l.Model.Forward(b, false, 0)
		}
		if err != nil {
			return 0, err
		}
		if err := be.Sync(); err != nil {
			return 0, err
		}
		if s >= 2 {
			el += time.Since(t0)
		}
	}
	return el.Seconds() / float64(steps), nil
}
