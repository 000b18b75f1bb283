package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
)

// Output files in output.dir.
const (
	AdapterFileName    = "adapter.safetensors"
	BestFileName       = "best.safetensors"
	CheckpointFileName = "checkpoint.safetensors"
	ConfigFileName     = "config.toml"
	LogFileName        = "log.jsonl"
	PredictionsName    = "test_predictions.jsonl"
	// MetricsFileName holds the final validation and test scores with the
	// per-class scores and confusion matrices of classification tasks.
	MetricsFileName = "metrics.json"
)

// Options are the loop's knobs that are not part of the run config.
type Options struct {
	// Resume continues from output.dir/checkpoint.safetensors.
	Resume bool
	// Progress receives progress: a one-line bar when Progress is a
	// terminal, JSON lines otherwise. nil: nothing.
	Progress io.Writer
	// StopAfter, when > 0, stops the process's training after that many
	// optimizer steps as if killed (no final save). For resume tests.
	StopAfter int
}

// errStopped is returned when Options.StopAfter ends a run.
var errStopped = errors.New("trainer: stopped by StopAfter")

// IsStopped reports whether err is the StopAfter stop.
func IsStopped(err error) bool { return errors.Is(err, errStopped) }

// Result summarises a finished run.
type Result struct {
	Steps     int
	NonFinite int
	// Best is the best validation score (metric BestMetric) at BestStep;
	// NaN without a validation set.
	Best       float64
	BestStep   int
	BestMetric string
	// Final is the validation score at the end; Test the test score when the
	// test set has labels.
	Final, Test *Scores
	// AdapterPath is the final adapter file.
	AdapterPath string
	// HFModelPath is the Hugging Face model folder (HFModelDirName) a run
	// with strategy full writes next to it; empty for other strategies and
	// when it could not be written (see Warnings).
	HFModelPath string
	// Warnings lists optional outputs that were skipped or failed: they
	// never fail a run whose training is done.
	Warnings []string
	// TrainSeconds, Examples and Tokens measure this process's training
	// loop (after a resume, only the steps run here): wall seconds from the
	// first step to the last, evaluations included, and the training
	// examples and non-padding tokens of its optimizer steps. EvalSeconds
	// is the part of TrainSeconds spent in validation.
	TrainSeconds, EvalSeconds float64
	Examples, Tokens          int
}

// Train runs the training loop of cfg on be: AdamW on the trainable tensors,
// linear warmup and decay, global-norm clipping, evaluation every
// train.eval_every steps (or per epoch), best adapter by
// train.metric_for_best, early stopping, and a checkpoint at every
// evaluation and every train.checkpoint_every steps, from which
// Options.Resume continues bitwise-identically on the CPU. At the end it
// writes the adapter file and evaluates the test set before any optional
// output (the Hugging Face folder of strategy full), whose failure is a
// warning, not an error.
func Train(s *Session, be backend.Backend, o Options) (*Result, error) {
	r, err := newRun(s, be, o)
	if err != nil {
		return nil, err
	}
	defer r.free()
	if err := r.loop(); err != nil {
		return nil, err
	}
	return r.finish()
}

// run is one training run in progress: the learner, the loop state that
// checkpoints carry, and the run's files.
type run struct {
	s       *Session
	c       *Config
	be      backend.Backend
	o       Options
	af      *adapter.File // what the run's adapter files describe (no tensors)
	cfgText []byte        // the effective config, in config.toml and checkpoints
	learner *Learner

	st      State
	rng     *RNG
	total   int   // optimizer steps of the whole run
	lengths []int // token counts of the training examples
	metric  string
	higher  bool // the metric improves upwards
	pos     int  // the positive class of binary F1

	log     *progress
	logFile *os.File
	// trainCache and valCache hold the frozen layers' outputs
	// (train.cache_frozen); nil when not caching.
	trainCache, valCache *frozenCache
	last                 *Scores  // the latest validation scores
	skipHF               string   // why the Hugging Face folder is not written ("": it is)
	warns                []string // Result.Warnings

	start                       time.Time
	stepsHere, examples, tokens int
	trainSeconds                float64 // the loop's wall time, set when it ends
	evalSeconds                 float64 // of which in evaluate
}

// newRun checks what the run will need, builds the model and optimizer,
// restores a checkpoint with Options.Resume, and opens the run's files.
func newRun(s *Session, be backend.Backend, o Options) (*run, error) {
	c := s.Cfg
	if err := CheckMetrics(c, s.Splits.Labels); err != nil {
		return nil, err
	}
	r := &run{s: s, c: c, be: be, o: o, af: s.AdapterFile(), rng: NewRNG(c.Train.Seed), pos: PositiveIndex(c, s.Splits.Labels)}
	if err := os.MkdirAll(c.Output.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("output.dir: %w", err)
	}
	var err error
	if r.cfgText, err = c.Encode(); err != nil {
		return nil, err
	}
	r.metric = c.MetricForBest()
	_, r.higher = Scores{}.Get(r.metric)
	r.lengths = make([]int, len(s.EncTrain))
	for i, e := range s.EncTrain {
		r.lengths[i] = len(e.IDs)
	}
	perEpoch := (len(r.lengths) + c.Train.BatchSize - 1) / c.Train.BatchSize
	r.total = c.Train.Epochs * perEpoch
	if c.Train.MaxSteps > 0 {
		r.total = c.Train.MaxSteps
	}
	r.st = State{Seed: c.Train.Seed, Schedule: NewSchedule(c.PeakLR(), r.total, c.Train.WarmupRatio)}
	if r.af.Strategy.Name == adapter.StratFull {
		if err := CanExportHF(r.af); err != nil {
			r.skipHF = err.Error()
		}
	}
	m, err := NewModelOpts(be, s.Ckpt, r.af, model.Options{MaxBatch: c.Train.BatchSize, MaxSeq: c.Model.MaxLength, Seed: c.Train.Seed,
		NoFrozenDropout: !c.Train.FrozenDropout, KeepFFNActivations: !c.Train.RecomputeFFN})
	if err != nil {
		return nil, err
	}
	ReleaseHostWeights(s.Ckpt)
	if r.learner, err = NewLearner(m, c.Train.WeightDecay); err != nil {
		m.Free()
		return nil, err
	}
	if err := r.openFiles(); err != nil {
		r.free()
		return nil, err
	}
	if r.skipHF != "" {
		r.warn(fmt.Sprintf("%s/ will not be written (%s); the adapter file and the test evaluation are", HFModelDirName, r.skipHF))
	}
	r.openCaches()
	return r, nil
}

// openCaches sets up the frozen-layer caches of train.cache_frozen, or
// warns that there is nothing to cache.
func (r *run) openCaches() {
	t := r.c.Train
	if !t.CacheFrozen {
		return
	}
	k, ok := r.learner.Model.CachePoint()
	if !ok {
		r.warn(fmt.Sprintf("train.cache_frozen: nothing to cache, the embeddings train under strategy %s; every step runs the whole model", r.af.Strategy.Name))
		return
	}
	dir := r.c.Output.Dir
	r.trainCache = newFrozenCache(filepath.Join(dir, "frozen-train.cache"), t.CacheMemoryMB, t.CacheDiskMB)
	r.valCache = newFrozenCache(filepath.Join(dir, "frozen-validation.cache"), t.CacheMemoryMB, t.CacheDiskMB)
	r.log.record(map[string]any{"event": "cache", "layer": k, "memory_mb": t.CacheMemoryMB, "disk_mb": t.CacheDiskMB}, "")
}

// openFiles restores the checkpoint (Options.Resume), writes config.toml and
// opens log.jsonl (appending when resuming).
func (r *run) openFiles() error {
	c := r.c
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if r.o.Resume {
		if err := r.resume(); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	if err := os.WriteFile(filepath.Join(c.Output.Dir, ConfigFileName), r.cfgText, 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.Output.Dir, LogFileName), flags, 0o644)
	if err != nil {
		return err
	}
	r.logFile = f
	r.log = &progress{file: f, out: r.o.Progress, tty: r.o.Progress != nil && isTerminal(r.o.Progress)}
	if r.o.Resume {
		// Steps after the checkpoint were lost with the killed process and
		// run again: their log lines may appear twice, before this record.
		r.log.record(map[string]any{"event": "resume", "step": r.st.Step, "epoch": r.st.Epoch, "batch": r.st.Batch}, "")
	}
	return nil
}

// resume loads output.dir/checkpoint.safetensors into the model, the
// optimizer, the loop state and the RNG.
func (r *run) resume() error {
	path := filepath.Join(r.c.Output.Dir, CheckpointFileName)
	ck, err := LoadCheckpoint(path, r.s.Ckpt.Fingerprint)
	if err != nil {
		return err
	}
	if ck.Config != string(r.cfgText) {
		return fmt.Errorf("%s was written by a run with another configuration (compare with %s)", path, filepath.Join(r.c.Output.Dir, ConfigFileName))
	}
	data := map[string][]float32{}
	for _, t := range ck.Adapter.Tensors {
		data[t.Name] = t.Data
	}
	m, opt := r.learner.Model, r.learner.Opt
	for i, sl := range opt.Slots {
		if data[sl.Name] == nil {
			return fmt.Errorf("%s lacks %s", path, sl.Name)
		}
		mv, vv, err := opt.Moments(i)
		if err != nil {
			return err
		}
		for _, u := range []struct {
			dst backend.Tensor
			src []float32
		}{{m.Param(sl.Name).T, data[sl.Name]}, {mv, ck.M[sl.Name]}, {vv, ck.V[sl.Name]}} {
			if err := r.be.Upload(u.dst, u.src); err != nil {
				return fmt.Errorf("%s: %s: %w", path, sl.Name, err)
			}
		}
	}
	r.st = ck.State
	opt.Step = r.st.Step
	return r.rng.Restore(r.st.RNG)
}

// free releases the learner, the model and the log file.
func (r *run) free() {
	if r.learner != nil {
		r.learner.Free()
		r.learner.Model.Free()
	}
	if r.logFile != nil {
		r.logFile.Close()
	}
	for _, c := range []*frozenCache{r.trainCache, r.valCache} {
		if c != nil {
			c.close()
		}
	}
}

// warn records a skipped or failed optional output.
func (r *run) warn(msg string) {
	r.warns = append(r.warns, msg)
	r.log.record(map[string]any{"event": "warning", "message": msg}, "")
}

// more reports whether training continues. Without max_steps the run ends
// after train.epochs epochs even when non-finite steps were skipped; with
// it, after max_steps updates.
func (r *run) more() bool {
	return r.st.Step < r.total && (r.c.Train.MaxSteps > 0 || r.st.Epoch < r.c.Train.Epochs)
}

// loop trains until the run is done, early stopping says stop, or
// Options.StopAfter pretends a kill.
func (r *run) loop() error {
	r.start = time.Now()
	stop := false
	epochStart := time.Now()
	for !stop && r.more() {
		batches := EpochOrder(r.st.Seed, r.st.Epoch, r.lengths, r.c.Train.BatchSize)
		for r.st.Batch < len(batches) && r.more() && !stop {
			var err error
			if stop, err = r.step(batches[r.st.Batch]); err != nil {
				return err
			}
		}
		if r.st.Batch >= len(batches) {
			r.st.Epoch++
			r.st.Batch = 0
			if r.c.Train.EvalEvery == 0 && !stop {
				var err error
				if stop, err = r.evaluate(); err != nil {
					return err
				}
				if err := r.saveCheckpoint(); err != nil {
					return err
				}
			}
			// Wall time of the epoch (its evaluation included) in this process.
			r.log.record(map[string]any{"event": "epoch", "epoch": r.st.Epoch - 1, "seconds": time.Since(epochStart).Seconds()}, "")
			epochStart = time.Now()
		}
	}
	r.trainSeconds = time.Since(r.start).Seconds()
	return r.saveCheckpoint()
}

// step trains on the batch of training examples idx, then logs, evaluates
// and checkpoints as configured. It reports whether early stopping says
// stop.
func (r *run) step(idx []int) (bool, error) {
	c := r.c
	b := MakeBatch(r.s.EncTrain, r.s.Splits.Train, idx, r.s.Tok.PadID())
	lr := r.st.Schedule.LR(r.st.Step)
	o := StepOptions{LR: lr, ClipNorm: c.Train.ClipNorm, Dropout: c.Train.Dropout, Seed: r.rng.Uint64()}
	var err error
	if r.trainCache != nil {
		if o.Cached, err = r.trainCache.batch(idx); err != nil {
			return false, err
		}
	}
	res, err := r.learner.Step(b.ForModel(r.s.Splits.Labels == nil), o)
	if err != nil {
		return false, err
	}
	if r.trainCache != nil && o.Cached == nil {
		if err := r.trainCache.store(r.learner.Model, idx); err != nil {
			return false, err
		}
	}
	r.st.Batch++
	if res.NonFinite {
		if c.Train.OnNonFinite == "abort" {
			return false, fmt.Errorf("step %d: non-finite loss %v or gradient norm %v (train.on_nonfinite = abort)", r.st.Step, res.Loss, res.GradNorm)
		}
		r.st.NonFinite++
		r.log.record(map[string]any{"event": "nonfinite", "step": r.st.Step, "loss": fmt.Sprint(res.Loss), "grad_norm": fmt.Sprint(res.GradNorm)}, "")
		return false, nil
	}
	r.st.Step++
	r.stepsHere++
	r.examples += b.B
	for _, n := range b.Mask {
		r.tokens += int(n)
	}
	if r.st.Step%c.Train.LogEvery == 0 || r.st.Step == r.total {
		r.logStep(res, lr)
	}
	stop := false
	if c.Train.EvalEvery > 0 && r.st.Step%c.Train.EvalEvery == 0 {
		if stop, err = r.evaluate(); err != nil {
			return false, err
		}
		if err := r.saveCheckpoint(); err != nil {
			return false, err
		}
	} else if c.Train.CheckpointEvery > 0 && r.st.Step%c.Train.CheckpointEvery == 0 {
		if err := r.saveCheckpoint(); err != nil {
			return false, err
		}
	}
	if r.o.StopAfter > 0 && r.stepsHere >= r.o.StopAfter {
		return false, errStopped
	}
	return stop, nil
}

// logStep writes a "train" record and the progress bar, with the elapsed
// time of this process and the estimated time to the end of training.
func (r *run) logStep(res StepResult, lr float64) {
	el := time.Since(r.start).Seconds()
	eta := el / float64(r.stepsHere) * float64(r.total-r.st.Step)
	bar := progressBar(r.st.Step, r.total, float64(res.Loss), lr, float64(r.examples)/el, el, eta)
	r.log.record(map[string]any{"event": "train", "step": r.st.Step, "epoch": r.st.Epoch, "loss": res.Loss, "lr": lr,
		"grad_norm": res.GradNorm, "examples_per_s": float64(r.examples) / el, "tokens_per_s": float64(r.tokens) / el,
		"elapsed_s": el, "eta_s": eta}, bar)
}

// evaluate scores the validation set, writes the best adapter file when the
// metric improved, and reports whether early stopping says stop.
func (r *run) evaluate() (bool, error) {
	if r.s.Splits.Validation == nil {
		return false, nil
	}
	t0 := time.Now()
	defer func() { r.evalSeconds += time.Since(t0).Seconds() }()
	_, sc, err := evaluate(r.learner.Model, r.s.Tok, r.s.EncVal, r.s.Splits.Validation, r.c.Train.BatchSize, r.pos, r.valCache)
	if err != nil {
		return false, err
	}
	r.last = sc
	st := &r.st
	v, _ := sc.Get(r.metric)
	if !st.HasBest || (r.higher && v > st.Best) || (!r.higher && v < st.Best) {
		st.Best, st.BestStep, st.BadEvals, st.HasBest = v, st.Step, 0, true
		if err := r.writeAdapter(filepath.Join(r.c.Output.Dir, BestFileName)); err != nil {
			return false, err
		}
	} else {
		st.BadEvals++
	}
	rec := map[string]any{"event": "eval", "step": st.Step, "epoch": st.Epoch, r.metric + "_best": st.Best}
	for k, v := range sc.Summary(r.s.Splits.Labels == nil) {
		rec[k] = v
	}
	r.log.record(rec, "")
	p := r.c.Train.EarlyStoppingPatience
	return p > 0 && st.BadEvals >= p, nil
}

// trained returns the run's adapter file with the current trained tensors.
func (r *run) trained() (*adapter.File, error) { return TrainedFile(r.learner.Model, r.af) }

// writeAdapter writes the current trained tensors as an adapter file: the
// one place adapter files of a run are written (best and final).
func (r *run) writeAdapter(path string) error {
	f, err := r.trained()
	if err != nil {
		return err
	}
	return adapter.Save(path, f)
}

// saveCheckpoint writes output.dir/checkpoint.safetensors: the trained
// tensors, the AdamW moments and the loop state with the RNG.
func (r *run) saveCheckpoint() error {
	f, err := r.trained()
	if err != nil {
		return err
	}
	ck := &Checkpoint{Adapter: f, M: map[string][]float32{}, V: map[string][]float32{}, State: r.st, Config: string(r.cfgText)}
	ck.State.RNG = r.rng.State()
	opt := r.learner.Opt
	for i, sl := range opt.Slots {
		mv, vv, err := opt.Moments(i)
		if err != nil {
			return err
		}
		mm, vh := make([]float32, sl.Len()), make([]float32, sl.Len())
		if err := r.be.Download(mm, mv); err != nil {
			return err
		}
		if err := r.be.Download(vh, vv); err != nil {
			return err
		}
		ck.M[sl.Name], ck.V[sl.Name] = mm, vh
	}
	return SaveCheckpoint(filepath.Join(r.c.Output.Dir, CheckpointFileName), ck)
}

// finish writes what a finished run promises, the essential outputs first:
// the adapter file, then the test set's evaluation and predictions, then the
// optional Hugging Face folder (strategy full), whose failure is only a
// warning.
func (r *run) finish() (*Result, error) {
	st := r.st
	res := &Result{Steps: st.Step, NonFinite: st.NonFinite, Best: math.NaN(), BestStep: st.BestStep, BestMetric: r.metric,
		AdapterPath: filepath.Join(r.c.Output.Dir, AdapterFileName), Final: r.last}
	if st.HasBest {
		res.Best = st.Best
	}
	if err := r.writeAdapter(res.AdapterPath); err != nil {
		return nil, err
	}
	if err := r.test(res); err != nil {
		return nil, err
	}
	res.TrainSeconds, res.EvalSeconds, res.Examples, res.Tokens = r.trainSeconds, r.evalSeconds, r.examples, r.tokens
	if err := r.writeMetrics(res); err != nil {
		return nil, err
	}
	if r.af.Strategy.Name == adapter.StratFull && r.skipHF == "" {
		if err := r.exportHF(); err != nil {
			r.warn(fmt.Sprintf("%s/ was not written: %v", HFModelDirName, err))
		} else {
			res.HFModelPath = filepath.Join(r.c.Output.Dir, HFModelDirName)
		}
	}
	res.Warnings = r.warns
	if c := r.trainCache; c != nil {
		r.log.record(map[string]any{"event": "cache", "train_batches_cached": c.Hits, "train_batches_computed": c.Misses,
			"validation_batches_cached": r.valCache.Hits, "validation_batches_computed": r.valCache.Misses}, "")
	}
	if r.log.tty {
		fmt.Fprintln(r.log.out)
	}
	return res, nil
}

// test evaluates the test set (when there is one) and writes its
// predictions.
func (r *run) test(res *Result) error {
	ds := r.s.Splits.Test
	if ds == nil {
		return nil
	}
	preds, sc, err := Evaluate(r.learner.Model, r.s.Tok, r.s.EncTest, ds, r.c.Train.BatchSize, r.pos)
	if err != nil {
		return err
	}
	if err := writePredictions(filepath.Join(r.c.Output.Dir, PredictionsName), ds, preds, r.s.Splits.Labels); err != nil {
		return err
	}
	res.Test = sc
	if sc != nil {
		rec := map[string]any{"event": "test"}
		for k, v := range sc.Summary(r.s.Splits.Labels == nil) {
			rec[k] = v
		}
		r.log.record(rec, "")
	}
	return nil
}

// exportHF writes output.dir/hf-model, the complete model of a full
// fine-tuning run as Hugging Face loads it (ExportHF).
func (r *run) exportHF() error {
	f, err := r.trained()
	if err != nil {
		return err
	}
	return ExportHF(filepath.Join(r.c.Output.Dir, HFModelDirName), r.s.Ckpt, f)
}

// writeMetrics writes output.dir/metrics.json: the label names, the metric
// that picked the best adapter, and the final validation and test scores
// (per-class scores and confusion matrices included).
func (r *run) writeMetrics(res *Result) error {
	rec := struct {
		Labels        []string `json:"labels"`
		MetricForBest string   `json:"metric_for_best"`
		Best          *float64 `json:"best"`
		BestStep      int      `json:"best_step"`
		Steps         int      `json:"steps"`
		Validation    *Scores  `json:"validation"`
		Test          *Scores  `json:"test"`
	}{MetricForBest: res.BestMetric, BestStep: res.BestStep, Steps: res.Steps, Validation: res.Final, Test: res.Test}
	if r.s.Splits.Labels != nil {
		rec.Labels = r.s.Splits.Labels.Names
	}
	if finite(res.Best) {
		rec.Best = &res.Best
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", MetricsFileName, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.c.Output.Dir, MetricsFileName), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("%s: %w", MetricsFileName, err)
	}
	return nil
}
