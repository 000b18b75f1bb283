package sweep

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Driver runs a plan's jobs on this machine, one at a time, each in a fresh
// process (Exec), skipping the finished ones, and prints a progress line per
// job with the elapsed time and an estimate of the time left.
type Driver struct {
	Plan *Plan
	// Exec runs one job (by its key) to completion in a fresh process;
	// its error says why the job failed.
	Exec func(key string) error
	// Out receives the progress lines.
	Out io.Writer
	// Phases restricts the run to some phases (nil: all).
	Phases []string
}

// Summary is what a Driver run did.
type Summary struct {
	Done, Ran, Failed, Blocked int
	Elapsed                    time.Duration
}

// Run runs every job of the plan in AllJobs order. A failed job is
// reported and the sweep goes on; the seed and ablate jobs that need its
// result are then reported as blocked.
func (d *Driver) Run() (*Summary, error) {
	p := d.Plan
	jobs := d.jobs()
	sum := &Summary{}
	start := time.Now()
	eta := newEstimator()
	for k, j := range jobs {
		rs, err := p.LoadResults()
		if err != nil {
			return sum, err
		}
		prefix := fmt.Sprintf("[%d/%d] %s", k+1, len(jobs), j.Key())
		rj, err := p.Resolve(j, rs)
		if err != nil {
			sum.Blocked++
			fmt.Fprintf(d.Out, "%s: blocked: %v\n", prefix, err)
			continue
		}
		if p.Done(rj, rs) {
			sum.Done++
			continue
		}
		fmt.Fprintf(d.Out, "%s: running (lr %s)\n", prefix, fmtLR(rj.LR))
		t0 := time.Now()
		err = d.Exec(j.Key())
		took := time.Since(t0)
		if err != nil {
			sum.Failed++
			fmt.Fprintf(d.Out, "%s: FAILED after %s: %v\n", prefix, clock(took), err)
			continue
		}
		sum.Ran++
		eta.add(rj, took)
		left := eta.left(jobs[k+1:], p, rs)
		fmt.Fprintf(d.Out, "%s: done in %s%s; elapsed %s, about %s left\n", prefix, clock(took), p.scoreNote(rj), clock(time.Since(start)), clock(left))
	}
	sum.Elapsed = time.Since(start)
	if sum.Done > 0 {
		fmt.Fprintf(d.Out, "%d of %d jobs were done before this run and were not redone\n", sum.Done, len(jobs))
	}
	return sum, nil
}

// jobs are the plan's jobs in the phases asked for.
func (d *Driver) jobs() []Job {
	var out []Job
	for _, j := range d.Plan.AllJobs() {
		if d.Phases == nil || contains(d.Phases, j.Phase) {
			out = append(out, j)
		}
	}
	return out
}

// Done reports whether a resolved job has finished.
func (p *Plan) Done(j Job, rs *Results) bool {
	if j.Phase == PhaseAblate {
		_, err := os.Stat(filepath.Join(p.AblationDir(j.Task), AblationJSON))
		return err == nil
	}
	return rs.Get(j.Task, j.Setting, j.LR, j.Seed) != nil
}

// scoreNote is ", validation f1 0.91, test f1 0.90" for a finished run.
func (p *Plan) scoreNote(j Job) string {
	if j.Phase == PhaseAblate {
		return ""
	}
	rs, err := p.LoadResults()
	if err != nil {
		return ""
	}
	r := rs.Get(j.Task, j.Setting, j.LR, j.Seed)
	if r == nil {
		return ""
	}
	var parts []string
	if v, ok := r.Validation[r.Metric]; ok {
		parts = append(parts, fmt.Sprintf("validation %s %.4f", r.Metric, v))
	}
	if v, ok := r.Test[r.Metric]; ok {
		parts = append(parts, fmt.Sprintf("test %s %.4f", r.Metric, v))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// estimator predicts the time of the jobs left from the jobs run so far:
// the mean of the same task and setting when there is one, else of the
// same task, else of all.
type estimator struct {
	sum map[string]time.Duration
	n   map[string]int
}

func newEstimator() *estimator {
	return &estimator{sum: map[string]time.Duration{}, n: map[string]int{}}
}

func (e *estimator) add(j Job, d time.Duration) {
	for _, k := range []string{j.Task + "/" + j.Setting + "/" + j.Phase, j.Task, ""} {
		e.sum[k] += d
		e.n[k]++
	}
}

func (e *estimator) guess(j Job) time.Duration {
	for _, k := range []string{j.Task + "/" + j.Setting + "/" + j.Phase, j.Task, ""} {
		if e.n[k] > 0 {
			return e.sum[k] / time.Duration(e.n[k])
		}
	}
	return 0
}

// left sums the guesses over the jobs not yet done.
func (e *estimator) left(jobs []Job, p *Plan, rs *Results) time.Duration {
	var t time.Duration
	for _, j := range jobs {
		if rj, err := p.Resolve(j, rs); err == nil && p.Done(rj, rs) {
			continue
		}
		t += e.guess(j)
	}
	return t
}

// clock formats a duration as h:mm:ss (m:ss under an hour).
func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
