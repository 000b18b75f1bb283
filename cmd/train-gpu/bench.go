package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

const benchHelp = `
Usage: train-gpu bench --model DIR [flags]

Times training steps and inference of the adapted model and prints
examples/s and tokens/s. A training step is exactly the trainer's
(trainer.Learner.Step): forward, loss, backward, global gradient norm,
clipping, and the AdamW update of every trainable tensor. Inference is the
evaluation forward pass (encoder, pooler, head; no dropout).

The workload is either --steps copies of one batch of random token ids
(every row --seq-len tokens) or, with --data, the first --batches batches of
a JSON Lines file: texts tokenized, truncated at --seq-len, cut into batches
of --batch-size in file order, each padded to its own longest row (dynamic
padding, as training does). A repetition is one pass over the workload;
tokens/s counts real (unpadded) tokens. --dump-batches writes the workload's
token ids so that other programs can time the very same batches.
`

// benchOptions are bench's flags.
type benchOptions struct {
	modelDir, device, strategy, mode string
	data, textField, dump, cpuprof   string
	ordinal, batch, seqLen, steps, m int
	batches, reps, warmup            int
	json, syncStdin, keepFFN         bool
	accumulate                       string
}

// benchStdin is where --sync-stdin reads its go-ahead lines (a variable so
// tests can feed it).
var benchStdin io.Reader = os.Stdin

func benchFlags(stdout io.Writer, o *benchOptions) *flag.FlagSet {
	fs := newFlags("bench", benchHelp, stdout)
	fs.StringVar(&o.modelDir, "model", "", "the base model folder (required)")
	fs.StringVar(&o.device, "device", "auto", "auto, cpu or cuda")
	fs.IntVar(&o.ordinal, "gpu", 0, "CUDA device ordinal")
	fs.IntVar(&o.batch, "batch-size", 32, "batch size")
	fs.IntVar(&o.seqLen, "seq-len", 128, "tokens per example (random ids), the truncation length (--data)")
	fs.IntVar(&o.steps, "steps", 10, "steps per repetition on random ids")
	fs.StringVar(&o.data, "data", "", "a JSON Lines file of texts: time its batches instead of random ids")
	fs.StringVar(&o.textField, "text-field", "text", "the --data field holding the text")
	fs.IntVar(&o.batches, "batches", 8, "how many batches of --data a repetition runs")
	fs.IntVar(&o.reps, "reps", 1, "timed repetitions of each mode")
	fs.IntVar(&o.warmup, "warmup", -1, "untimed steps before the first repetition (-1: 2 on random ids, one pass over the --data batches)")
	fs.StringVar(&o.mode, "mode", "both", "what to time: train, forward or both")
	fs.StringVar(&o.strategy, "strategy", "adapters", "strategy: "+strings.Join(adapter.Strategies, ", "))
	fs.IntVar(&o.m, "bottleneck", 64, "adapter bottleneck m")
	fs.BoolVar(&o.keepFFN, "keep-ffn", false, "keep the FFN activations of layers whose FFN weights are frozen instead of recomputing (train.recompute_ffn = false)")
	fs.StringVar(&o.accumulate, "accumulate", "float32", "how matrix products sum: float32, or float64 (CPU only, device.accumulate)")
	fs.BoolVar(&o.json, "json", false, "print JSON Lines (setup, one line per repetition, summary) instead of text")
	fs.BoolVar(&o.syncStdin, "sync-stdin", false, "wait for a line on stdin before each repetition (a harness interleaves several programs' repetitions)")
	fs.StringVar(&o.dump, "dump-batches", "", "write the workload's batches (token ids, labels) as JSON to this file and exit")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile (pprof) of the timed repetitions to this file")
	return fs
}

func runBench(args []string, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := benchFlags(stdout, &o)
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if o.modelDir == "" {
		fs.Usage()
		return errUsage
	}
	if err := o.check(); err != nil {
		return err
	}
	ck, f, trained, err := benchModel(o)
	if err != nil {
		return err
	}
	w, err := benchWorkload(o, ck)
	if err != nil {
		return err
	}
	if o.dump != "" {
		if err := w.dump(o.dump); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "bench: wrote %d batches (%d real tokens) to %s\n", len(w.batches), w.realTokens, o.dump)
		return nil
	}
	be, err := openDeviceAcc(o.device, o.ordinal, o.accumulate, stderr)
	if err != nil {
		return err
	}
	m, err := trainer.NewModelOpts(be, ck, f, model.Options{MaxBatch: o.batch, MaxSeq: o.seqLen, Seed: 1, KeepFFNActivations: o.keepFFN})
	if err != nil {
		return err
	}
	defer m.Free()
	trainer.ReleaseHostWeights(ck) // as Train does
	l, err := trainer.NewLearner(m, 0.01)
	if err != nil {
		return err
	}
	defer l.Free()
	r := &benchReport{w: stdout, json: o.json}
	r.setup(o, be.Name(), w, trained)
	return benchModes(l, w, o, r)
}

// check validates the flags that need no model.
func (o benchOptions) check() error {
	for _, v := range []struct {
		name string
		v    int
	}{{"--batch-size", o.batch}, {"--seq-len", o.seqLen}, {"--steps", o.steps}, {"--bottleneck", o.m}, {"--batches", o.batches}, {"--reps", o.reps}} {
		if v.v < 1 {
			return fmt.Errorf("%s %d: must be positive", v.name, v.v)
		}
	}
	if o.warmup < -1 {
		return fmt.Errorf("--warmup %d: must be -1 (automatic) or at least 0", o.warmup)
	}
	if _, err := benchModeList(o.mode); err != nil {
		return err
	}
	return nil
}

// benchMode is one thing bench times.
type benchMode struct {
	name, label string
	train       bool
}

func benchModeList(mode string) ([]benchMode, error) {
	train := benchMode{"train", "train step (trainer.Learner.Step)", true}
	fwd := benchMode{"forward", "inference (forward)", false}
	switch mode {
	case "train":
		return []benchMode{train}, nil
	case "forward":
		return []benchMode{fwd}, nil
	case "both":
		return []benchMode{train, fwd}, nil
	}
	return nil, fmt.Errorf("--mode %q: want train, forward or both", mode)
}

// benchModes warms up and times each mode o.reps times; with --cpuprofile
// the timed repetitions (not the warm-up) are profiled.
func benchModes(l *trainer.Learner, w *workload, o benchOptions, r *benchReport) error {
	modes, _ := benchModeList(o.mode) // checked by o.check
	var sync *bufio.Reader
	if o.syncStdin {
		sync = bufio.NewReader(benchStdin)
	}
	for i, md := range modes {
		warm := o.warmup
		if warm < 0 {
			warm = w.defaultWarmup
		}
		if _, err := timeSteps(l, w.steps(warm), md.train, 0); err != nil {
			return err
		}
		r.ready(md)
		if i == 0 && o.cpuprof != "" {
			stop, err := startCPUProfile(o.cpuprof)
			if err != nil {
				return err
			}
			defer stop()
		}
		var reps []benchRep
		for rep := 0; rep < o.reps; rep++ {
			if sync != nil {
				if _, err := sync.ReadString('\n'); err != nil {
					return fmt.Errorf("--sync-stdin: waiting for repetition %d: %w", rep+1, err)
				}
			}
			wall, cpu, err := timePass(l, w, md.train)
			if err != nil {
				return err
			}
			reps = append(reps, benchRep{Wall: wall, CPU: cpu})
			r.rep(md, rep, reps[len(reps)-1], w)
		}
		r.summary(md, reps, w)
	}
	return nil
}

// startCPUProfile starts runtime/pprof's CPU profile into path and returns
// the function that stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// benchModel loads the checkpoint and describes the benchmarked model: the
// strategy (top_k trains one layer), Houlsby adapters of bottleneck o.m, a
// two-class pooler head; and the number of parameters that train.
func benchModel(o benchOptions) (*model.Checkpoint, *adapter.File, int64, error) {
	ck, err := model.LoadCheckpoint(o.modelDir)
	if err != nil {
		return nil, nil, 0, err
	}
	if o.seqLen > ck.Config.MaxPositionEmbeddings {
		return nil, nil, 0, fmt.Errorf("--seq-len %d exceeds the model's max_position_embeddings %d", o.seqLen, ck.Config.MaxPositionEmbeddings)
	}
	a := adapter.Default()
	a.Bottleneck = o.m
	f := &adapter.File{Strategy: adapter.Strategy{Name: o.strategy, TopK: 1, TrainLayerNorm: true}, Head: adapter.Head{Kind: adapter.HeadPooler, NumLabels: 2},
		Labels: []string{"0", "1"}, BaseFingerprint: ck.Fingerprint, Base: adapter.BaseOf(ck.Config), BaseHasPooler: ck.HasPooler}
	if f.Strategy.UsesAdapters() {
		f.Adapter = &a
	}
	c, err := adapter.Count(f.Plan())
	if err != nil {
		return nil, nil, 0, err
	}
	return ck, f, c.Trained, nil
}

// errNoTraining is timeSteps' answer to a step that changed nothing.
var errNoTraining = errors.New("bench: a training step was skipped (non-finite loss or gradient norm)")

// timeSteps runs the batches in order as training steps (Learner.Step at a
// tiny LR, dropout on, clipping at 1, dropout seeds from seed0) or forward
// passes, and synchronises the device at the end.
func timeSteps(l *trainer.Learner, batches []*model.Batch, train bool, seed0 int) (int, error) {
	for s, b := range batches {
		if train {
			res, err := l.Step(b, trainer.StepOptions{LR: 1e-5, ClipNorm: 1, Dropout: true, Seed: uint64(seed0 + s)})
			if err != nil {
				return s, err
			}
			if res.NonFinite {
				return s, errNoTraining
			}
		} else if _, _, err := l.Model.Forward(b, false, 0); err != nil {
			return s, err
		}
	}
	return len(batches), l.Model.Backend().Sync()
}

// timePass times one pass over the workload: wall seconds and this
// process's CPU seconds (all threads; -1 where unknown).
func timePass(l *trainer.Learner, w *workload, train bool) (wall, cpu float64, err error) {
	c0 := processCPUSeconds()
	t0 := nowSeconds()
	if _, err := timeSteps(l, w.batches, train, 1000); err != nil {
		return 0, 0, err
	}
	wall = nowSeconds() - t0
	if c0 < 0 {
		return wall, -1, nil
	}
	return wall, processCPUSeconds() - c0, nil
}

// goInfo names the Go runtime's settings that matter to the timings.
func goInfo() string {
	return fmt.Sprintf("%s %s/%s GOMAXPROCS=%d", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
}
