package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/houlsby/adapters/trainer"
)

// Phases, in the order they run.
const (
	PhaseLR     = "lr"
	PhaseSeed   = "seed"
	PhaseAblate = "ablate"
)

// Phases lists the phases in order.
var Phases = []string{PhaseLR, PhaseSeed, PhaseAblate}

// Job is one run of the sweep (or one ablation).
type Job struct {
	Phase, Task, Setting string
	// LR is the learning rate; 0 until Resolve sets it for the seed and
	// ablate phases, whose rate is the one the lr phase chose.
	LR   float64
	Seed uint64
}

// Key names the job independently of a learning rate not yet chosen, e.g.
// "lr:spam/full/lr=3e-05/seed=1", "seed:spam/adapters-m8/seed=2",
// "ablate:spam/adapters-m64".
func (j Job) Key() string {
	switch j.Phase {
	case PhaseLR:
		return fmt.Sprintf("lr:%s/%s/lr=%s/seed=%d", j.Task, j.Setting, fmtLR(j.LR), j.Seed)
	case PhaseSeed:
		return fmt.Sprintf("seed:%s/%s/seed=%d", j.Task, j.Setting, j.Seed)
	}
	return fmt.Sprintf("ablate:%s/%s", j.Task, j.Setting)
}

// FormatLR writes a learning rate the shortest way (1e-05, 0.0003), as
// job keys and folder names do.
func FormatLR(lr float64) string { return strconv.FormatFloat(lr, 'g', -1, 64) }

func fmtLR(lr float64) string { return FormatLR(lr) }

// RunKey identifies a training run by what decides it.
func RunKey(task, setting string, lr float64, seed uint64) string {
	return fmt.Sprintf("%s/%s/lr=%s/seed=%d", task, setting, fmtLR(lr), seed)
}

// PhaseJobs lists the jobs of one phase in a fixed order: tasks, then
// settings, then learning rates or seeds as the file lists them. A
// scheduler's array index is the position in this list.
func (p *Plan) PhaseJobs(phase string) []Job {
	var out []Job
	for _, t := range p.Tasks {
		out = append(out, p.taskJobs(t.Name, phase)...)
	}
	return out
}

// AllJobs lists every job in the order one machine runs them: task by task,
// its lr phase, then its seed phase, then its ablation.
func (p *Plan) AllJobs() []Job {
	var out []Job
	for _, t := range p.Tasks {
		for _, ph := range Phases {
			out = append(out, p.taskJobs(t.Name, ph)...)
		}
	}
	return out
}

func (p *Plan) taskJobs(task, phase string) []Job {
	seeds := p.Sweep.Seeds
	var out []Job
	switch phase {
	case PhaseLR:
		for _, st := range p.Settings {
			for _, lr := range st.LRs {
				out = append(out, Job{Phase: PhaseLR, Task: task, Setting: st.Name, LR: lr, Seed: seeds[0]})
			}
		}
	case PhaseSeed:
		for _, st := range p.Settings {
			for i, seed := range seeds {
				if i == 0 && st.Searched() {
					continue // the lr phase ran it
				}
				out = append(out, Job{Phase: PhaseSeed, Task: task, Setting: st.Name, Seed: seed})
			}
		}
	case PhaseAblate:
		if p.Ablation.Setting != "" {
			out = append(out, Job{Phase: PhaseAblate, Task: task, Setting: p.Ablation.Setting, Seed: seeds[0]})
		}
	}
	return out
}

// FindJob returns the job with the given key.
func (p *Plan) FindJob(key string) (Job, bool) {
	for _, j := range p.AllJobs() {
		if j.Key() == key {
			return j, true
		}
	}
	return Job{}, false
}

// RunDir is the folder of a training run: OUT/TASK/SETTING/lrLR-seedSEED.
func (p *Plan) RunDir(task, setting string, lr float64, seed uint64) string {
	return filepath.Join(p.Sweep.Out, task, setting, fmt.Sprintf("lr%s-seed%d", fmtLR(lr), seed))
}

// AblationDir is the folder of a task's ablation: OUT/TASK/ablation.
func (p *Plan) AblationDir(task string) string { return filepath.Join(p.Sweep.Out, task, "ablation") }

// Overrides are the run's keys over the task's run file, in order: the
// sweep's, the task's, the setting's, then learning rate, seed and output
// folder.
func (p *Plan) Overrides(task, setting string, lr float64, seed uint64) ([]string, error) {
	t, ok := p.Task(task)
	if !ok {
		return nil, fmt.Errorf("sweep: no task %q", task)
	}
	st, ok := p.Setting(setting)
	if !ok {
		return nil, fmt.Errorf("sweep: no setting %q", setting)
	}
	var ov []string
	ov = append(ov, p.Sweep.Set...)
	ov = append(ov, t.Set...)
	ov = append(ov, st.Set...)
	ov = append(ov, "train.lr="+fmtLR(lr), "train.seed="+strconv.FormatUint(seed, 10), "output.dir="+p.RunDir(task, setting, lr, seed))
	return ov, nil
}

// RunConfig is the trainer configuration of a run.
func (p *Plan) RunConfig(task, setting string, lr float64, seed uint64) (*trainer.Config, error) {
	ov, err := p.Overrides(task, setting, lr, seed)
	if err != nil {
		return nil, err
	}
	t, _ := p.Task(task)
	c, err := trainer.LoadConfig(t.Config, ov)
	if err != nil {
		return nil, fmt.Errorf("task %s, setting %s: %w", task, setting, err)
	}
	return c, nil
}

// ConfigHash fingerprints a run's configuration without its output folder
// (so a sweep folder can be moved or merged from other machines): a result
// counts for a run only when the hashes agree.
func ConfigHash(c *trainer.Config) (string, error) {
	cc := *c
	cc.Output.Dir = ""
	text, err := cc.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:8]), nil
}

// TaskMetric is the validation metric that chooses a task's learning rate:
// task.metric, else its run file's metric_for_best.
func (p *Plan) TaskMetric(task string) (string, error) {
	if m, ok := p.metrics[task]; ok {
		return m, nil
	}
	t, ok := p.Task(task)
	if !ok {
		return "", fmt.Errorf("sweep: no task %q", task)
	}
	m := t.Metric
	if m == "" {
		c, err := p.RunConfig(task, p.Settings[0].Name, 1e-3, p.Sweep.Seeds[0])
		if err != nil {
			return "", err
		}
		m = c.MetricForBest()
	}
	if _, err := metricDirection(m); err != nil {
		return "", fmt.Errorf("task %s: metric: %w", task, err)
	}
	p.metrics[task] = m
	return m, nil
}

// metricDirection reports whether higher values of metric m are better.
func metricDirection(m string) (higher bool, err error) {
	for _, x := range trainer.Metrics {
		if x == m {
			return m != "loss", nil
		}
	}
	return false, fmt.Errorf("%q: want one of %v", m, trainer.Metrics)
}

// ChosenLR is the learning rate of the setting's probe (itself or its
// lr_from) with the best validation metric over the search runs with the
// first seed; ties go to the rate listed first. ok is false while a search
// run is missing; missing lists them.
func (p *Plan) ChosenLR(rs *Results, task, setting string) (lr float64, ok bool, missing []string) {
	st, found := p.Setting(setting)
	if !found {
		return 0, false, []string{"setting " + setting}
	}
	probe, _ := p.Setting(st.Probe())
	metric, err := p.TaskMetric(task)
	if err != nil {
		return 0, false, []string{err.Error()}
	}
	higher, _ := metricDirection(metric)
	best, bestV, have := 0.0, 0.0, false
	for _, cand := range probe.LRs {
		r := rs.Get(task, probe.Name, cand, p.Sweep.Seeds[0])
		if r == nil {
			missing = append(missing, RunKey(task, probe.Name, cand, p.Sweep.Seeds[0]))
			continue
		}
		v, has := r.Validation[metric]
		if !has {
			v = worst(higher)
		}
		if !have || (higher && v > bestV) || (!higher && v < bestV) {
			best, bestV, have = cand, v, true
		}
	}
	if len(missing) > 0 {
		return 0, false, missing
	}
	return best, true, nil
}

// worst is the value a run without the metric (a diverged one) counts as.
func worst(higher bool) float64 {
	if higher {
		return -1e300
	}
	return 1e300
}

// Resolve fills in the learning rate of a seed or ablate job from the
// search results; it errors, naming the missing runs, when they are not all
// there yet.
func (p *Plan) Resolve(j Job, rs *Results) (Job, error) {
	if j.Phase == PhaseLR {
		return j, nil
	}
	lr, ok, missing := p.ChosenLR(rs, j.Task, j.Setting)
	if !ok {
		return j, fmt.Errorf("%s: the learning rate is not chosen yet; missing %d search run(s), e.g. %s", j.Key(), len(missing), missing[0])
	}
	j.LR = lr
	return j, nil
}
