package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/internal/atomicfile"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
)

// Output files in output.dir.
const (
	AdapterFileName    = "adapter.safetensors"
	BestFileName       = "best.safetensors"
	CheckpointFileName = "checkpoint.safetensors"
	ConfigFileName     = "config.toml"
	LogFileName        = "log.jsonl"
	PredictionsName    = "test_predictions.jsonl"
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
	// with strategy full writes next to it; empty for other strategies.
	HFModelPath string
}

// Session is a loaded base model, tokenizer and the encoded data of a run.
type Session struct {
	Cfg    *Config
	Ckpt   *model.Checkpoint
	Tok    *tokenizer.Tokenizer
	Splits *Splits
	// Enc holds the tokenized examples of each split (nil when absent).
	EncTrain, EncVal, EncTest []Encoded
}

// Open loads the checkpoint, the tokenizer and the data of cfg and
// tokenizes every example.
func Open(cfg *Config) (*Session, error) { return OpenSplits(cfg, nil) }

// OpenSplits is Open with the data already loaded (sp == nil: load it).
func OpenSplits(cfg *Config, sp *Splits) (*Session, error) {
	ck, err := model.LoadCheckpoint(cfg.Model.Dir)
	if err != nil {
		return nil, err
	}
	if cfg.Model.MaxLength > ck.Config.MaxPositionEmbeddings {
		return nil, fmt.Errorf("model.max_length = %d exceeds the model's max_position_embeddings %d", cfg.Model.MaxLength, ck.Config.MaxPositionEmbeddings)
	}
	tok, err := tokenizer.Load(cfg.Model.Dir)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		if sp, err = LoadSplits(cfg); err != nil {
			return nil, err
		}
	}
	s := &Session{Cfg: cfg, Ckpt: ck, Tok: tok, Splits: sp}
	s.EncTrain = Tokenize(tok, sp.Train, cfg.Model.MaxLength)
	if sp.Validation != nil {
		s.EncVal = Tokenize(tok, sp.Validation, cfg.Model.MaxLength)
	}
	if sp.Test != nil {
		s.EncTest = Tokenize(tok, sp.Test, cfg.Model.MaxLength)
	}
	return s, nil
}

// Tokenize encodes every example of ds, truncated to maxLen tokens.
func Tokenize(tok *tokenizer.Tokenizer, ds *Dataset, maxLen int) []Encoded {
	out := make([]Encoded, len(ds.Examples))
	opt := tokenizer.Options{MaxLength: maxLen}
	for i, ex := range ds.Examples {
		var e tokenizer.Encoding
		if ex.Pair != "" {
			e = tok.EncodePair(ex.Text, ex.Pair, opt)
		} else {
			e = tok.Encode(ex.Text, opt)
		}
		out[i] = Encoded{IDs: e.IDs, TypeIDs: e.TypeIDs}
	}
	return out
}

// NumLabels is the head's output count.
func (s *Session) NumLabels() int {
	if s.Splits.Labels == nil {
		return 1
	}
	return s.Splits.Labels.Len()
}

// AdapterFile describes the run's trained tensors (without the tensors).
func (s *Session) AdapterFile() *adapter.File {
	c := s.Cfg
	st := c.AdapterStrategy()
	f := &adapter.File{
		Strategy: st, Head: adapter.Head{Kind: c.Model.Head, NumLabels: s.NumLabels()},
		BaseFingerprint: s.Ckpt.Fingerprint, Base: adapter.BaseOf(s.Ckpt.Config), BaseHasPooler: s.Ckpt.HasPooler,
	}
	if s.Splits.Labels != nil {
		f.Labels = s.Splits.Labels.Names
	}
	if st.UsesAdapters() {
		a := c.Adapter
		a.TrainLayerNorm = c.TrainLayerNorm()
		f.Adapter = &a
	}
	return f
}

// NewModel builds the encoder an adapter file f describes on be, sized for
// batches of maxB × maxT, initialised from seed (created tensors), with the
// file's strategy deciding what trains. Tensors of f, if any, are uploaded.
func NewModel(be backend.Backend, ck *model.Checkpoint, f *adapter.File, maxB, maxT int, seed uint64) (*model.Model, error) {
	if f.Base != adapter.BaseOf(ck.Config) || f.BaseHasPooler != ck.HasPooler {
		return nil, fmt.Errorf("the adapter was made for a base model of another shape (%+v, pooler %v) than %s (%+v, pooler %v)",
			f.Base, f.BaseHasPooler, ck.Dir, adapter.BaseOf(ck.Config), ck.HasPooler)
	}
	p, r, err := f.Plan().Resolve()
	if err != nil {
		return nil, err
	}
	if p.Strategy.UsesAdapters() && f.Adapter == nil {
		return nil, fmt.Errorf("strategy adapters without an adapter config")
	}
	opts := model.Options{MaxBatch: maxB, MaxSeq: maxT, Trainable: p.Strategy.Trainable, Seed: seed, Head: f.Head.Options()}
	if r != nil {
		r.Seed = seed
		opts.Adapter = r
	}
	m, err := model.New(be, ck, opts)
	if err != nil {
		return nil, err
	}
	for _, t := range f.Tensors {
		p := m.Param(t.Name)
		if p == nil {
			m.Free()
			return nil, fmt.Errorf("trainer: the model has no tensor %s", t.Name)
		}
		if err := be.Upload(p.T, t.Data); err != nil {
			m.Free()
			return nil, fmt.Errorf("uploading %s: %w", t.Name, err)
		}
	}
	return m, nil
}

// download copies the trainable tensors of m to the host.
func download(be backend.Backend, m *model.Model) ([]adapter.Tensor, error) {
	var out []adapter.Tensor
	for _, p := range m.TrainableParams() {
		d := make([]float32, p.Len())
		if err := be.Download(d, p.T); err != nil {
			return nil, fmt.Errorf("downloading %s: %w", p.Name, err)
		}
		out = append(out, adapter.Tensor{Name: p.Name, Shape: append([]int(nil), p.Shape...), Data: d})
	}
	return out, nil
}

// modelBatch converts a padded Batch to the model's; regression batches
// carry Targets, classification batches Labels.
func modelBatch(b *Batch, regression bool) *model.Batch {
	mb := &model.Batch{IDs: b.IDs, TypeIDs: b.TypeIDs, Mask: b.Mask, B: b.B, T: b.T}
	if regression {
		mb.Targets = b.Targets
	} else {
		mb.Labels = b.Labels
	}
	return mb
}

// Predictions of one pass over a dataset: per example the class (or the
// regression value) and the logits.
type Predictions struct {
	Class  []int
	Value  []float64
	Logits [][]float32
}

// Evaluate runs m over enc (with ds's labels when labelled) in batches of
// batchSize, without dropout. It returns the predictions, and the scores
// when every example has a label (loss is the mean per-example loss).
func Evaluate(m *model.Model, tok *tokenizer.Tokenizer, enc []Encoded, ds *Dataset, batchSize, pos int) (*Predictions, *Scores, error) {
	V := m.NumLabels()
	regression := V == 1
	labelled := true
	for _, ex := range ds.Examples {
		if ex.RawLabel == "" {
			labelled = false
			break
		}
	}
	p := &Predictions{}
	lossSum := 0.0
	for _, idx := range EvalOrder(len(enc), batchSize) {
		b := MakeBatch(enc, ds, idx, tok.PadID())
		mb := modelBatch(b, regression)
		if !labelled {
			mb.Labels, mb.Targets = nil, nil
		}
		loss, logits, err := m.Forward(mb, false, 0)
		if err != nil {
			return nil, nil, err
		}
		lossSum += float64(loss) * float64(b.B)
		for r := 0; r < b.B; r++ {
			row := append([]float32(nil), logits[r*V:(r+1)*V]...)
			p.Logits = append(p.Logits, row)
			if regression {
				p.Value = append(p.Value, float64(row[0]))
				continue
			}
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			p.Class = append(p.Class, best)
		}
	}
	if !labelled {
		return p, nil, nil
	}
	loss := lossSum / float64(len(enc))
	var s Scores
	if regression {
		gold := make([]float64, len(ds.Examples))
		for i, ex := range ds.Examples {
			gold[i] = float64(ex.Target)
		}
		s = RegressionScores(p.Value, gold, loss)
	} else {
		gold := make([]int, len(ds.Examples))
		for i, ex := range ds.Examples {
			gold[i] = ex.Label
		}
		s = ClassificationScores(p.Class, gold, V, pos, loss)
	}
	return p, &s, nil
}

// PositiveIndex is the class binary F1 counts as positive: data.positive_label,
// else class 1 of a two-class task, else -1.
func PositiveIndex(c *Config, labels *Labels) int {
	if labels == nil {
		return -1
	}
	if c.Data.PositiveLabel != "" {
		if i, ok := labels.Index(c.Data.PositiveLabel); ok {
			return i
		}
		return -1
	}
	if labels.Len() == 2 {
		return 1
	}
	return -1
}

// isTerminal reports whether w is a character device (a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress writes log records: always as JSON lines to the run's log file,
// and to Options.Progress as a bar (TTY) or JSON lines.
type progress struct {
	file io.Writer
	out  io.Writer
	tty  bool
}

func (p *progress) record(rec map[string]any, bar string) {
	js, _ := json.Marshal(rec)
	if p.file != nil {
		fmt.Fprintf(p.file, "%s\n", js)
	}
	if p.out == nil {
		return
	}
	if p.tty && bar != "" {
		fmt.Fprintf(p.out, "\r%s\x1b[K", bar)
		return
	}
	if p.tty {
		fmt.Fprintln(p.out)
	}
	fmt.Fprintf(p.out, "%s\n", js)
}

// Train runs the training loop of cfg on be: AdamW on the trainable tensors,
// linear warmup and decay, global-norm clipping, evaluation every
// train.eval_every steps (or per epoch), best checkpoint by
// train.metric_for_best, early stopping, and a checkpoint at every
// evaluation and every train.checkpoint_every steps, from which
// Options.Resume continues bitwise-identically on the CPU.
func Train(s *Session, be backend.Backend, o Options) (*Result, error) {
	c := s.Cfg
	if err := os.MkdirAll(c.Output.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("output.dir: %w", err)
	}
	cfgText, err := c.Encode()
	if err != nil {
		return nil, err
	}
	af := s.AdapterFile()
	m, err := NewModel(be, s.Ckpt, af, c.Train.BatchSize, c.Model.MaxLength, c.Train.Seed)
	if err != nil {
		return nil, err
	}
	defer m.Free()
	var params []Param
	for _, p := range m.TrainableParams() {
		params = append(params, Param{Name: p.Name, T: p.T, Grad: p.Grad})
	}
	opt, err := NewAdamW(be, params, c.Train.WeightDecay)
	if err != nil {
		return nil, err
	}
	defer opt.Free(be)

	lengths := make([]int, len(s.EncTrain))
	for i, e := range s.EncTrain {
		lengths[i] = len(e.IDs)
	}
	perEpoch := (len(lengths) + c.Train.BatchSize - 1) / c.Train.BatchSize
	total := c.Train.Epochs * perEpoch
	if c.Train.MaxSteps > 0 {
		total = c.Train.MaxSteps
	}
	metric := c.MetricForBest()
	_, higher := Scores{}.Get(metric)
	rng := NewRNG(c.Train.Seed)
	st := State{Seed: c.Train.Seed, Schedule: NewSchedule(c.PeakLR(), total, c.Train.WarmupRatio)}
	ckPath := filepath.Join(c.Output.Dir, CheckpointFileName)
	logFlags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.Resume {
		ck, err := LoadCheckpoint(ckPath, s.Ckpt.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		if ck.Config != string(cfgText) {
			return nil, fmt.Errorf("--resume: %s was written by a run with another configuration (compare with %s)", ckPath, filepath.Join(c.Output.Dir, ConfigFileName))
		}
		for i, p := range params {
			t := m.Param(p.Name)
			var data []float32
			for _, x := range ck.Adapter.Tensors {
				if x.Name == p.Name {
					data = x.Data
				}
			}
			if data == nil {
				return nil, fmt.Errorf("--resume: %s lacks %s", ckPath, p.Name)
			}
			if err := be.Upload(t.T, data); err != nil {
				return nil, err
			}
			if err := be.Upload(opt.M[i], ck.M[p.Name]); err != nil {
				return nil, err
			}
			if err := be.Upload(opt.V[i], ck.V[p.Name]); err != nil {
				return nil, err
			}
		}
		st = ck.State
		opt.Step = st.Step
		if err := rng.Restore(st.RNG); err != nil {
			return nil, err
		}
		logFlags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	if err := os.WriteFile(filepath.Join(c.Output.Dir, ConfigFileName), cfgText, 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(c.Output.Dir, LogFileName), logFlags, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	pr := &progress{file: logFile, out: o.Progress, tty: o.Progress != nil && isTerminal(o.Progress)}
	pos := PositiveIndex(c, s.Splits.Labels)
	if o.Resume {
		// Steps after the checkpoint were lost with the killed process and
		// run again: their log lines may appear twice, before this record.
		pr.record(map[string]any{"event": "resume", "step": st.Step, "epoch": st.Epoch, "batch": st.Batch}, "")
	}

	save := func() error {
		ts, err := download(be, m)
		if err != nil {
			return err
		}
		f := *af
		f.Tensors = ts
		ck := &Checkpoint{Adapter: &f, M: map[string][]float32{}, V: map[string][]float32{}, State: st, Config: string(cfgText)}
		ck.State.RNG = rng.State()
		for i, p := range params {
			mm, vv := make([]float32, p.T.Len()), make([]float32, p.T.Len())
			if err := be.Download(mm, opt.M[i]); err != nil {
				return err
			}
			if err := be.Download(vv, opt.V[i]); err != nil {
				return err
			}
			ck.M[p.Name], ck.V[p.Name] = mm, vv
		}
		return SaveCheckpoint(ckPath, ck)
	}
	saveAdapter := func(path string) error {
		ts, err := download(be, m)
		if err != nil {
			return err
		}
		f := *af
		f.Tensors = ts
		return adapter.Save(path, &f)
	}
	// evaluate scores the validation set, keeps the best adapter and
	// reports whether early stopping says stop.
	var last *Scores
	evaluate := func() (bool, error) {
		if s.Splits.Validation == nil {
			return false, nil
		}
		_, sc, err := Evaluate(m, s.Tok, s.EncVal, s.Splits.Validation, c.Train.BatchSize, pos)
		if err != nil {
			return false, err
		}
		last = sc
		v, _ := sc.Get(metric)
		better := !st.HasBest || (higher && v > st.Best) || (!higher && v < st.Best)
		if better {
			st.Best, st.BestStep, st.BadEvals, st.HasBest = v, st.Step, 0, true
			if err := saveAdapter(filepath.Join(c.Output.Dir, BestFileName)); err != nil {
				return false, err
			}
		} else {
			st.BadEvals++
		}
		pr.record(map[string]any{"event": "eval", "step": st.Step, "epoch": st.Epoch, "loss": sc.Loss, "accuracy": sc.Accuracy,
			"f1": sc.F1, "macro_f1": sc.MacroF1, "mcc": sc.MCC, "pearson": sc.Pearson, "spearman": sc.Spearman, metric + "_best": st.Best}, "")
		return c.Train.EarlyStoppingPatience > 0 && st.BadEvals >= c.Train.EarlyStoppingPatience, nil
	}

	regression := s.Splits.Labels == nil
	start := time.Now()
	stepsHere, examples := 0, 0
	stop := false
	// Without max_steps the run ends after train.epochs epochs even when
	// non-finite steps were skipped; with it, after max_steps updates.
	more := func() bool { return st.Step < total && (c.Train.MaxSteps > 0 || st.Epoch < c.Train.Epochs) }
	for !stop && more() {
		batches := EpochOrder(st.Seed, st.Epoch, lengths, c.Train.BatchSize)
		for st.Batch < len(batches) && more() {
			b := MakeBatch(s.EncTrain, s.Splits.Train, batches[st.Batch], s.Tok.PadID())
			dseed := rng.Uint64()
			if err := m.ZeroGrads(); err != nil {
				return nil, err
			}
			loss, _, err := m.Forward(modelBatch(b, regression), c.Train.Dropout, dseed)
			if err != nil {
				return nil, err
			}
			if err := m.Backward(); err != nil {
				return nil, err
			}
			arena, arenaLen := m.GradArena()
			if arena == nil {
				return nil, fmt.Errorf("trainer: nothing trains") // the head always does; a model bug
			}
			norm, err := VectorNorm(be, arena, arenaLen)
			if err != nil {
				return nil, err
			}
			st.Batch++
			if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
				if c.Train.OnNonFinite == "abort" {
					return nil, fmt.Errorf("step %d: non-finite loss %v or gradient norm %v (train.on_nonfinite = abort)", st.Step, loss, norm)
				}
				st.NonFinite++
				pr.record(map[string]any{"event": "nonfinite", "step": st.Step, "loss": fmt.Sprint(loss), "grad_norm": fmt.Sprint(norm)}, "")
				continue
			}
			if sc := ClipScale(norm, c.Train.ClipNorm); sc < 1 {
				if err := be.Scale(arena, float32(sc), arenaLen); err != nil {
					return nil, err
				}
			}
			lr := st.Schedule.LR(st.Step)
			if err := opt.Update(be, lr); err != nil {
				return nil, err
			}
			st.Step++
			stepsHere++
			examples += b.B
			if st.Step%c.Train.LogEvery == 0 || st.Step == total {
				el := time.Since(start).Seconds()
				bar := progressBar(st.Step, total, float64(loss), lr, float64(examples)/el)
				pr.record(map[string]any{"event": "train", "step": st.Step, "epoch": st.Epoch, "loss": loss, "lr": lr,
					"grad_norm": norm, "examples_per_s": float64(examples) / el}, bar)
			}
			if c.Train.EvalEvery > 0 && st.Step%c.Train.EvalEvery == 0 {
				if stop, err = evaluate(); err != nil {
					return nil, err
				}
				if err := save(); err != nil {
					return nil, err
				}
				if stop {
					break
				}
			} else if c.Train.CheckpointEvery > 0 && st.Step%c.Train.CheckpointEvery == 0 {
				if err := save(); err != nil {
					return nil, err
				}
			}
			if o.StopAfter > 0 && stepsHere >= o.StopAfter {
				return nil, errStopped
			}
		}
		if st.Batch >= len(batches) {
			st.Epoch++
			st.Batch = 0
			if c.Train.EvalEvery == 0 && !stop {
				if stop, err = evaluate(); err != nil {
					return nil, err
				}
				if err := save(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := save(); err != nil {
		return nil, err
	}
	best := math.NaN()
	if st.HasBest {
		best = st.Best
	}
	res := &Result{Steps: st.Step, NonFinite: st.NonFinite, Best: best, BestStep: st.BestStep, BestMetric: metric,
		AdapterPath: filepath.Join(c.Output.Dir, AdapterFileName), Final: last}
	if err := saveAdapter(res.AdapterPath); err != nil {
		return nil, err
	}
	if af.Strategy.Name == adapter.StratFull {
		// Full fine-tuning changes every tensor: also write a complete
		// model folder Hugging Face loads (see ExportHF).
		ts, err := download(be, m)
		if err != nil {
			return nil, err
		}
		f := *af
		f.Tensors = ts
		res.HFModelPath = filepath.Join(c.Output.Dir, HFModelDirName)
		if err := ExportHF(res.HFModelPath, s.Ckpt, &f); err != nil {
			return nil, err
		}
	}
	if s.Splits.Test != nil {
		preds, sc, err := Evaluate(m, s.Tok, s.EncTest, s.Splits.Test, c.Train.BatchSize, pos)
		if err != nil {
			return nil, err
		}
		if err := writePredictions(filepath.Join(c.Output.Dir, PredictionsName), s.Splits.Test, preds, s.Splits.Labels); err != nil {
			return nil, err
		}
		res.Test = sc
		if sc != nil {
			pr.record(map[string]any{"event": "test", "loss": sc.Loss, "accuracy": sc.Accuracy, "f1": sc.F1, "mcc": sc.MCC,
				"pearson": sc.Pearson, "spearman": sc.Spearman}, "")
		}
	}
	if pr.tty {
		fmt.Fprintln(pr.out)
	}
	return res, nil
}

func progressBar(step, total int, loss, lr, exPerS float64) string {
	const width = 30
	n := width * step / max(1, total)
	return fmt.Sprintf("step %d/%d [%s%s] loss %.4f lr %.2e %.1f ex/s", step, total,
		strings.Repeat("=", n), strings.Repeat(" ", width-n), loss, lr, exPerS)
}

// writePredictions writes one JSON object per test example (its line in the
// test file, the predicted label or value) atomically: a temporary file in
// the same folder, fsync, rename.
func writePredictions(path string, ds *Dataset, p *Predictions, labels *Labels) error {
	var b strings.Builder
	for i, ex := range ds.Examples {
		rec := map[string]any{"line": ex.Line}
		if labels == nil {
			rec["prediction"] = p.Value[i]
		} else {
			rec["prediction"] = labels.Names[p.Class[i]]
		}
		js, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("predictions: %w", err)
	}
	return nil
}
