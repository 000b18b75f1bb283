package sweep

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// Estimate is the measured cost of one task x setting run: on the CPU
// backend in CPU seconds of this process (user + system), which unlike wall
// time on a shared machine hardly depend on what else runs (a quiet machine
// with c cores takes about CPU / (c · parallel efficiency) of wall time); on
// a GPU in wall seconds.
type Estimate struct {
	Task, Setting string
	// Steps is the optimizer steps of a run; StepSeconds the predicted
	// training CPU time of a run; EvalSeconds that of its evaluations
	// (validation each epoch, test at the end); LoadSeconds loading the
	// model and data.
	Steps                                 int
	StepSeconds, EvalSeconds, LoadSeconds float64
	// ValPassSeconds is one pass over the validation set.
	ValPassSeconds float64
	// Runs is how many runs of this task and setting the grid has.
	Runs int
	// AblationSeconds is the layer ablation of this setting (when it is
	// the ablated one): L(L+1)/2 + 1 validation passes.
	AblationSeconds float64
}

// Total is the predicted CPU time of all the runs of this task and setting.
func (e Estimate) Total() time.Duration {
	return time.Duration((float64(e.Runs)*(e.StepSeconds+e.EvalSeconds+e.LoadSeconds) + e.AblationSeconds) * float64(time.Second))
}

// Estimate times a few real training steps and forward passes of every
// task x setting on this machine and predicts the sweep's CPU time: a
// step's CPU time is fitted as a + b·(padded tokens) over three batches of
// the first epoch (the shortest, the median and the longest), then summed
// over the batches of a run; evaluation likewise from two batches. It prints
// one line per task x setting to w and returns the estimates.
func (p *Plan) Estimate(env Env, w io.Writer) ([]Estimate, error) {
	runs := map[string]int{}
	for _, j := range p.AllJobs() {
		if j.Phase != PhaseAblate {
			runs[j.Task+"/"+j.Setting]++
		}
	}
	be, err := env.OpenDevice(p.deviceKind())
	if err != nil {
		return nil, err
	}
	var out []Estimate
	for _, t := range p.Tasks {
		var sess *trainer.Session
		var load float64
		for _, st := range p.Settings {
			lr := 1e-3
			if len(st.LRs) > 0 {
				lr = st.LRs[0]
			}
			c, err := p.RunConfig(t.Name, st.Name, lr, p.Sweep.Seeds[0])
			if err != nil {
				return nil, err
			}
			if sess == nil {
				c0 := clockOf(be)
				if sess, err = trainer.Open(c); err != nil {
					return nil, err
				}
				load = clockOf(be) - c0
			}
			s := *sess
			s.Cfg = c
			e, err := estimateRun(&s, be, c)
			if err != nil {
				return nil, fmt.Errorf("estimate %s/%s: %w", t.Name, st.Name, err)
			}
			e.Task, e.Setting, e.LoadSeconds, e.Runs = t.Name, st.Name, load, runs[t.Name+"/"+st.Name]
			if st.Name == p.Ablation.Setting {
				L := s.Ckpt.Config.NumHiddenLayers
				e.AblationSeconds = float64(L*(L+1)/2+1) * e.ValPassSeconds
			}
			fmt.Fprintf(w, "%-10s %-19s %4d steps %6.1f train + %5.1f eval + %4.1f load CPU-s x %d runs", e.Task, e.Setting, e.Steps, e.StepSeconds, e.EvalSeconds, e.LoadSeconds, e.Runs)
			if e.AblationSeconds > 0 {
				fmt.Fprintf(w, " + %.0f s ablation", e.AblationSeconds)
			}
			fmt.Fprintf(w, " = %s\n", clock(e.Total()))
			out = append(out, e)
		}
	}
	return out, nil
}

// estimateRun measures one configuration on an opened session.
func estimateRun(s *trainer.Session, be backend.Backend, c *trainer.Config) (Estimate, error) {
	m, err := trainer.NewModel(be, s.Ckpt, s.AdapterFile(), c.Train.BatchSize, c.Model.MaxLength, c.Train.Seed)
	if err != nil {
		return Estimate{}, err
	}
	defer m.Free()
	l, err := trainer.NewLearner(m, c.Train.WeightDecay)
	if err != nil {
		return Estimate{}, err
	}
	defer l.Free()
	lengths := make([]int, len(s.EncTrain))
	for i, e := range s.EncTrain {
		lengths[i] = len(e.IDs)
	}
	batches := trainer.EpochOrder(c.Train.Seed, 0, lengths, c.Train.BatchSize)
	steps := c.Train.Epochs * len(batches)
	if c.Train.MaxSteps > 0 {
		steps = c.Train.MaxSteps
	}
	regression := s.Splits.Labels == nil
	train := func(idx []int) (float64, error) {
		b := trainer.MakeBatch(s.EncTrain, s.Splits.Train, idx, s.Tok.PadID())
		c0 := clockOf(be)
		_, err := l.Step(b.ForModel(regression), trainer.StepOptions{LR: 1e-5, ClipNorm: 1, Dropout: c.Train.Dropout, Seed: 1})
		if err == nil {
			err = be.Sync()
		}
		return clockOf(be) - c0, err
	}
	a, b, err := fitCost(batches, lengths, 3, train)
	if err != nil {
		return Estimate{}, err
	}
	e := Estimate{Steps: steps}
	for k := 0; k < steps; k++ {
		e.StepSeconds += a + b*float64(padded(batches[k%len(batches)], lengths))
	}
	val, test, err := estimateEval(s, m, be, c)
	evals := c.Train.Epochs
	if c.Train.EvalEvery > 0 {
		evals = steps / c.Train.EvalEvery
	}
	e.ValPassSeconds, e.EvalSeconds = val, float64(evals)*val+test
	return e, err
}

// estimateEval predicts one forward pass over the validation set and one
// over the test set, in the trainer's evaluation batches.
func estimateEval(s *trainer.Session, m *model.Model, be backend.Backend, c *trainer.Config) (val, test float64, err error) {
	var pass [2]float64
	for k, set := range []struct {
		enc []trainer.Encoded
		ds  *trainer.Dataset
	}{{s.EncVal, s.Splits.Validation}, {s.EncTest, s.Splits.Test}} {
		if set.ds == nil {
			continue
		}
		lengths := make([]int, len(set.enc))
		for i, e := range set.enc {
			lengths[i] = len(e.IDs)
		}
		batches := trainer.EvalOrder(lengths, c.Train.BatchSize)
		fwd := func(idx []int) (float64, error) {
			b := trainer.MakeBatch(set.enc, set.ds, idx, s.Tok.PadID())
			c0 := clockOf(be)
			_, _, err := m.Forward(b.ForModel(s.Splits.Labels == nil), false, 0)
			if err == nil {
				err = be.Sync()
			}
			return clockOf(be) - c0, err
		}
		a, b, err := fitCost(batches, lengths, 2, fwd)
		if err != nil {
			return 0, 0, err
		}
		for _, idx := range batches {
			pass[k] += a + b*float64(padded(idx, lengths))
		}
	}
	return pass[0], pass[1], nil
}

// padded is the padded token count of a batch: rows times the longest row.
func padded(idx []int, lengths []int) int {
	t := 0
	for _, i := range idx {
		t = max(t, lengths[i])
	}
	return t * len(idx)
}

// clockOf is the clock the estimate reads for a backend: CPU seconds of
// this process on the CPU backend (robust to other load on a shared
// machine), wall seconds on a GPU, whose time the process's CPU time does
// not show.
func clockOf(be backend.Backend) float64 {
	if be.Name() == "cpu" {
		c, _ := processUsage()
		return c
	}
	return float64(time.Now().UnixNano()) / 1e9
}

// deviceKind is the device of the plan's runs (of the first task and
// setting; a sweep runs on one kind of device).
func (p *Plan) deviceKind() (string, int) {
	c, err := p.RunConfig(p.Tasks[0].Name, p.Settings[0].Name, 1e-3, p.Sweep.Seeds[0])
	if err != nil {
		return "auto", 0
	}
	return c.Device.Kind, c.Device.Ordinal
}

// fitCost times run on n batches of different padded sizes (after one
// untimed warm-up run) and fits seconds = a + b·tokens by least squares; with
// sizes too close to separate a from b it returns a = 0 and the mean rate.
func fitCost(batches [][]int, lengths []int, n int, run func([]int) (float64, error)) (a, b float64, err error) {
	if len(batches) == 0 {
		return 0, 0, nil
	}
	order := make([]int, len(batches))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return padded(batches[order[x]], lengths) < padded(batches[order[y]], lengths) })
	if _, err := run(batches[order[0]]); err != nil {
		return 0, 0, err
	}
	var xs, ys []float64
	for k := 0; k < n && k < len(order); k++ {
		i := order[k*(len(order)-1)/max(1, n-1)]
		sec, err := run(batches[i])
		if err != nil {
			return 0, 0, err
		}
		xs, ys = append(xs, float64(padded(batches[i], lengths))), append(ys, sec)
	}
	var mx, my float64
	for i := range xs {
		mx, my = mx+xs[i], my+ys[i]
	}
	mx, my = mx/float64(len(xs)), my/float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx < 1e-9*mx*mx || sxy <= 0 {
		return 0, my / mx, nil
	}
	b = sxy / sxx
	a = my - b*mx
	if a < 0 { // noise: a negative fixed cost would undercount small batches
		return 0, my / mx, nil
	}
	return a, b, nil
}
