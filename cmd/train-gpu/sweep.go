package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/sweep"
)

const sweepHelp = `
Usage: train-gpu sweep -c sweep.toml [--quick] [flags]

Runs a grid of training runs: tasks x settings (strategy and options) x
learning rates x seeds, as the sweep file says (examples/sweep/sweep.toml,
docs/sweep.md). Phase lr runs every learning rate of a setting with the first
seed; phase seed runs the other seeds at the rate with the best validation
metric; phase ablate removes the adapters of every span of layers from one
trained adapter per task. Each job runs in its own process and writes
result.json into its run folder: finished jobs are not redone, so an
interrupted sweep continues where it stopped. One progress line per job
gives the elapsed time and the estimated time left. At the end the report
(results.jsonl, report.md, PNG plots) is written, as train-gpu report does.

On many machines: --list and --count give each phase's job list (the index
of a job is its line), and --phase P --index I runs one job; every job
writes only into its own folder, so any scheduler (a Kubernetes Indexed
Job, a Slurm job array; docs/sweep.md) can run them into a shared folder or
folders merged later, and train-gpu report merges whatever results exist.
--estimate times a few real steps of every task and setting here and
predicts the sweep's time.
`

// sweepFlags are the sweep command's flags.
type sweepFlags struct {
	cfg, phase, run, report, doc, out               string
	quick, list, count, estimate, noReport, verbose bool
	index                                           int
}

func runSweep(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sweep", sweepHelp, stdout)
	var f sweepFlags
	fs.StringVar(&f.cfg, "c", "", "the sweep file (required)")
	fs.BoolVar(&f.quick, "quick", false, "apply the file's [quick] table: a few minutes, to check the pipeline")
	fs.StringVar(&f.phase, "phase", "", "lr, seed or ablate: the phase --list, --count and --index mean, or the only phase to run")
	fs.BoolVar(&f.list, "list", false, "print the jobs (of --phase, or all) with their index and status, and stop")
	fs.BoolVar(&f.count, "count", false, "print the number of jobs of --phase (the array size for a scheduler) and stop")
	fs.IntVar(&f.index, "index", -1, "run the job with this index in --phase's list, in this process (a scheduler's array task)")
	fs.StringVar(&f.run, "run", "", "run the job with this key in this process (what each job process of the sweep does)")
	fs.BoolVar(&f.estimate, "estimate", false, "time a few training steps of every task and setting and print the predicted time, then stop")
	fs.StringVar(&f.out, "out", "", "the runs folder, instead of the file's sweep.out (or quick.out)")
	fs.StringVar(&f.report, "report", "", "the report folder (default: OUT/report)")
	fs.StringVar(&f.doc, "doc", "", "also write the report into this Markdown file, between its markers (e.g. docs/results.md)")
	fs.BoolVar(&f.noReport, "no-report", false, "do not write the report at the end")
	fs.BoolVar(&f.verbose, "verbose", false, "show each job's training progress")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if f.cfg == "" {
		fs.Usage()
		return errUsage
	}
	p, err := sweep.Load(f.cfg, f.quick)
	if err != nil {
		return err
	}
	if f.out != "" {
		p.Sweep.Out = f.out
	}
	if f.phase != "" && !contains(sweep.Phases, f.phase) {
		return fmt.Errorf("--phase %q: want one of %s", f.phase, strings.Join(sweep.Phases, ", "))
	}
	env := sweepEnv(stderr, f.verbose)
	switch {
	case f.list || f.count:
		return listJobs(stdout, p, f)
	case f.estimate:
		return estimateSweep(stdout, p, env)
	case f.run != "" || f.index >= 0:
		return runOneJob(stdout, p, f, env)
	}
	return driveSweep(stdout, stderr, p, f)
}

// sweepEnv opens devices as the other commands do; job progress goes to
// stderr with --verbose.
func sweepEnv(stderr io.Writer, verbose bool) sweep.Env {
	env := sweep.Env{OpenDevice: func(kind string, ordinal int) (backend.Backend, error) { return openDevice(kind, ordinal, stderr) }}
	if verbose {
		env.Progress = stderr
	}
	return env
}

// listJobs prints --count or --list.
func listJobs(stdout io.Writer, p *sweep.Plan, f sweepFlags) error {
	jobs := p.AllJobs()
	if f.phase != "" {
		jobs = p.PhaseJobs(f.phase)
	} else if f.count {
		return fmt.Errorf("--count needs --phase (each phase is one array)")
	}
	if f.count {
		fmt.Fprintln(stdout, len(jobs))
		return nil
	}
	rs, err := p.LoadResults()
	if err != nil {
		return err
	}
	for i, j := range jobs {
		status := "to do"
		if rj, err := p.Resolve(j, rs); err != nil {
			status = "waits for the lr phase"
		} else if p.Done(rj, rs) {
			status = "done"
		} else if rj.Phase != sweep.PhaseLR {
			status = "to do (lr " + sweep.FormatLR(rj.LR) + ")"
		}
		fmt.Fprintf(stdout, "%d\t%s\t%s\n", i, j.Key(), status)
	}
	return nil
}

// runOneJob runs --run KEY or --phase P --index I in this process.
func runOneJob(stdout io.Writer, p *sweep.Plan, f sweepFlags, env sweep.Env) error {
	key := f.run
	if f.index >= 0 {
		if f.phase == "" {
			return fmt.Errorf("--index needs --phase")
		}
		jobs := p.PhaseJobs(f.phase)
		if f.index >= len(jobs) {
			return fmt.Errorf("--index %d: phase %s has %d jobs (0..%d)", f.index, f.phase, len(jobs), len(jobs)-1)
		}
		key = jobs[f.index].Key()
	}
	j, ok := p.FindJob(key)
	if !ok {
		return fmt.Errorf("--run %q: no such job in %s (see --list)", key, p.Path)
	}
	r, ran, err := p.RunJob(j, env)
	if err != nil {
		return err
	}
	switch {
	case r == nil:
		fmt.Fprintf(stdout, "%s: done\n", key)
	case !ran:
		fmt.Fprintf(stdout, "%s: already done (%s)\n", key, r.Key)
	default:
		fmt.Fprintf(stdout, "%s: done in %.0f s (%s)\n", key, r.WallSeconds, r.Key)
	}
	return nil
}

// driveSweep runs every job in a child process, then the report.
func driveSweep(stdout, stderr io.Writer, p *sweep.Plan, f sweepFlags) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d := &sweep.Driver{Plan: p, Out: stdout, Exec: func(key string) error { return execJob(exe, p, key, f.verbose, stderr) }}
	if f.phase != "" {
		d.Phases = []string{f.phase}
	}
	fmt.Fprintf(stdout, "sweep %s (%s): %d jobs into %s\n", p.Path, p.Mode(), len(p.AllJobs()), p.Sweep.Out)
	sum, err := d.Run()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sweep: %d run, %d done before, %d failed, %d blocked, in %s\n", sum.Ran, sum.Done, sum.Failed, sum.Blocked, sum.Elapsed.Round(time.Second))
	if !f.noReport {
		if err := writeReport(stdout, p, f.report, f.doc); err != nil {
			return err
		}
	}
	if sum.Failed > 0 || sum.Blocked > 0 {
		return fmt.Errorf("%d job(s) failed and %d could not run; rerun the same command to retry them", sum.Failed, sum.Blocked)
	}
	return nil
}

// execJob runs one job as `train-gpu sweep -c FILE [--quick] --run KEY` in
// a child process, so that its CPU time and peak memory are its own. The
// child's error output is returned (its last lines) when it fails.
func execJob(exe string, p *sweep.Plan, key string, verbose bool, stderr io.Writer) error {
	args := []string{"sweep", "-c", p.Path, "--run", key, "--out", p.Sweep.Out}
	if p.Quick {
		args = append(args, "--quick")
	}
	if verbose {
		args = append(args, "--verbose")
	}
	cmd := exec.Command(exe, args...)
	var errOut bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &errOut
	if verbose {
		cmd.Stderr = io.MultiWriter(&errOut, stderr)
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		msg := strings.TrimSpace(tailLines(errOut.String(), 5))
		if errors.As(err, &ee) && msg != "" {
			return errors.New(msg)
		}
		return fmt.Errorf("%w %s", err, msg)
	}
	return nil
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// estimateSweep prints the measured estimate of every task and setting and
// the total, and on the CPU the wall time of a quiet machine.
func estimateSweep(stdout io.Writer, p *sweep.Plan, env sweep.Env) error {
	fmt.Fprintf(stdout, "estimate for %s (%s): timing a few steps of every task and setting on this machine\n", p.Path, p.Mode())
	es, err := p.Estimate(env, stdout)
	if err != nil {
		return err
	}
	var total time.Duration
	runs := 0
	for _, e := range es {
		total += e.Total()
		runs += e.Runs
	}
	fmt.Fprintf(stdout, "predicted: %d runs and the ablations take %s of CPU time (wall time on a GPU)\n", runs, total.Round(time.Second))
	// The GEMMs scale to both cores almost perfectly (docs/benchmarks.md:
	// 192.0 vs 97.7 GFLOP/s for the FMA loop on 2 cores vs 1); the rest
	// of a step scales less, hence a range.
	n := float64(runtime.NumCPU())
	fmt.Fprintf(stdout, "on a quiet machine with %d cores: %s (perfect scaling) to %s (70%% parallel efficiency) of wall time\n", runtime.NumCPU(),
		time.Duration(float64(total)/n).Round(time.Minute), time.Duration(float64(total)/(0.7*n)).Round(time.Minute))
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
