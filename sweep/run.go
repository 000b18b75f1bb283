package sweep

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/trainer"
)

// Env is what running a job needs from the program.
type Env struct {
	// OpenDevice opens the backend device.kind names.
	OpenDevice func(kind string, ordinal int) (backend.Backend, error)
	// Progress receives the trainer's progress lines (nil: none; the run's
	// log.jsonl has them all).
	Progress io.Writer
}

// RunJob runs one job in this process. A training job resolves its learning
// rate, returns the existing result when the run is already done (ran is
// false), resumes a checkpoint written with the same configuration, trains,
// and writes result.json. The result records the process's CPU time and peak
// memory, so a job should be the only work of its process (train-gpu sweep
// starts one process per job).
func (p *Plan) RunJob(j Job, env Env) (res *Result, ran bool, err error) {
	start := time.Now()
	rs, err := p.LoadResults()
	if err != nil {
		return nil, false, err
	}
	if j, err = p.Resolve(j, rs); err != nil {
		return nil, false, err
	}
	if j.Phase == PhaseAblate {
		return nil, true, p.runAblation(j, env)
	}
	if r := rs.Get(j.Task, j.Setting, j.LR, j.Seed); r != nil {
		return r, false, nil
	}
	c, err := p.RunConfig(j.Task, j.Setting, j.LR, j.Seed)
	if err != nil {
		return nil, false, err
	}
	sess, be, resume, err := p.open(c, env)
	if err != nil {
		return nil, false, err
	}
	tr, err := trainer.Train(sess, be, trainer.Options{Resume: resume, Progress: env.Progress})
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", j.Key(), err)
	}
	r, err := p.result(j, c, sess, tr, be.Name(), start)
	if err != nil {
		return nil, true, err
	}
	dir := c.Output.Dir
	if err := WriteResult(dir, r); err != nil {
		return nil, true, err
	}
	if p.Sweep.Prune {
		p.prune(dir, j.Setting)
	}
	return r, true, nil
}

// open loads the session of c and the device, and tells whether the run
// resumes: a checkpoint exists and config.toml (written when the run
// started) is the same configuration.
func (p *Plan) open(c *trainer.Config, env Env) (*trainer.Session, backend.Backend, bool, error) {
	dir := c.Output.Dir
	text, err := c.Encode()
	if err != nil {
		return nil, nil, false, err
	}
	old, errCfg := os.ReadFile(filepath.Join(dir, trainer.ConfigFileName))
	_, errCk := os.Stat(filepath.Join(dir, trainer.CheckpointFileName))
	resume := errCfg == nil && errCk == nil && bytes.Equal(old, text)
	sess, err := trainer.Open(c)
	if err != nil {
		return nil, nil, false, err
	}
	be, err := env.OpenDevice(c.Device.Kind, c.Device.Ordinal)
	if err != nil {
		return nil, nil, false, err
	}
	return sess, be, resume, nil
}

// result assembles the result line of a finished run.
func (p *Plan) result(j Job, c *trainer.Config, sess *trainer.Session, tr *trainer.Result, device string, start time.Time) (*Result, error) {
	counts, err := adapter.Count(sess.AdapterFile().Plan())
	if err != nil {
		return nil, err
	}
	metric, err := p.TaskMetric(j.Task)
	if err != nil {
		return nil, err
	}
	hash, err := ConfigHash(c)
	if err != nil {
		return nil, err
	}
	regression := sess.Splits.Labels == nil
	cpu, rss := processUsage()
	host, _ := os.Hostname()
	r := &Result{
		Key: RunKey(j.Task, j.Setting, j.LR, j.Seed), Task: j.Task, Setting: j.Setting, Phase: j.Phase,
		Strategy: c.Strategy.Name, Settings: settingsOf(c, len(sess.Splits.Train.Examples)), LR: j.LR, Seed: j.Seed, Metric: metric,
		TrainedParams: counts.Trained, BackboneParams: counts.Backbone, TrainedShare: counts.TrainedShare(),
		Steps: tr.Steps, TrainExamples: tr.Examples, TrainTokens: int64(tr.Tokens),
		WallSeconds: time.Since(start).Seconds(), TrainSeconds: tr.TrainSeconds, CPUSeconds: cpu, PeakRSSBytes: rss,
		Commit: Commit(), Device: device, Host: host, CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Finished: time.Now().UTC().Format(time.RFC3339), ConfigHash: hash,
	}
	if sec := tr.TrainSeconds - tr.EvalSeconds; sec > 0 {
		r.TokensPerSecond = float64(tr.Tokens) / sec
	}
	if tr.Final != nil {
		r.Validation = tr.Final.Summary(regression)
	}
	if tr.Test != nil {
		r.Test = tr.Test.Summary(regression)
	}
	return r, nil
}

// settingsOf lists the options of a run that the report and plots need.
func settingsOf(c *trainer.Config, trainExamples int) map[string]any {
	s := map[string]any{"head": c.Model.Head, "max_length": c.Model.MaxLength, "batch_size": c.Train.BatchSize,
		"epochs": c.Train.Epochs, "max_steps": c.Train.MaxSteps, "train_set": trainExamples}
	switch c.Strategy.Name {
	case adapter.StratAdapters:
		m := c.Adapter.Bottleneck
		s["bottleneck"], s["placement"], s["train_layernorm"] = m, c.Adapter.Placement, c.TrainLayerNorm()
		if c.Adapter.ReductionFactor > 0 {
			s["reduction_factor"] = c.Adapter.ReductionFactor
		}
		if len(c.Adapter.Layers) > 0 {
			s["layers"] = c.Adapter.Layers
		}
		if c.Adapter.TopLayers > 0 {
			s["top_layers"] = c.Adapter.TopLayers
		}
	case adapter.StratTopK:
		s["top_k"] = c.Strategy.TopK
	}
	return s
}

// prune removes what a finished run no longer needs: the checkpoint, the
// best adapter, a Hugging Face folder, and the adapter file unless the
// setting is the one the ablation evaluates.
func (p *Plan) prune(dir, setting string) {
	for _, f := range []string{trainer.CheckpointFileName, trainer.BestFileName} {
		os.Remove(filepath.Join(dir, f))
	}
	os.RemoveAll(filepath.Join(dir, trainer.HFModelDirName))
	if setting != p.Ablation.Setting {
		os.Remove(filepath.Join(dir, trainer.AdapterFileName))
	}
}

// stampedCommit is the commit `make build` writes into the binary
// (-ldflags -X), "-dirty" appended when tracked files differed; empty in
// other builds.
var stampedCommit string

// Commit names the source revision of this binary: the commit `make build`
// stamped, else the VCS stamp of `go build` when present (GOFLAGS may turn
// it off), else `git rev-parse` in the working directory, with "-dirty"
// when tracked files differ; "unknown" when none works.
func Commit() string {
	if stampedCommit != "" {
		return stampedCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "-dirty"
	}
	return rev
}
