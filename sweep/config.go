// Package sweep runs the paper's comparisons as a grid of training runs:
// tasks x settings (a strategy and its options) x learning rates x seeds,
// each run an ordinary trainer run (a task's TOML run file plus overrides).
// The learning rate of every setting is chosen on validation from a small
// set, as Houlsby et al. (2019, section 3.1) did, and the chosen rate is then
// run with further seeds. Runs are independent jobs: one process runs one
// job and writes its result.json next to the run's files, so a sweep is
// resumable (finished runs are not redone) and can be spread over many
// machines by any scheduler; the report merges whatever results exist.
//
// Phases: "lr" (every learning rate of a setting, with the first seed),
// "seed" (the other seeds at the chosen rate; the rate is resolved when the
// job runs, so the job list is known up front) and "ablate" (the layer
// ablation of one trained adapter per task). See docs/sweep.md.
package sweep

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// File is a sweep file (TOML), e.g. examples/sweep/sweep.toml.
type File struct {
	Sweep    Section   `toml:"sweep"`
	Tasks    []Task    `toml:"task"`
	Settings []Setting `toml:"setting"`
	Ablation Ablation  `toml:"ablation"`
	Quick    Quick     `toml:"quick"`
}

// Section is the [sweep] table.
type Section struct {
	// Out is the folder of the runs: OUT/TASK/SETTING/lrLR-seedSEED/.
	Out string `toml:"out"`
	// Seeds are the seeds of every setting; the first also runs the
	// learning-rate search.
	Seeds []uint64 `toml:"seeds"`
	// Set are "section.key=value" overrides applied to every run (the
	// syntax of train --set).
	Set []string `toml:"set"`
	// Prune removes checkpoint.safetensors and best.safetensors of a
	// finished run, and the adapter file of runs other than the ablated
	// setting's: a full fine-tuning run would keep 3 x 87 MiB otherwise.
	Prune bool `toml:"prune"`
}

// Task is one [[task]]: a trainer run file and overrides.
type Task struct {
	Name string `toml:"name"`
	// Config is the task's TOML run file (model, data, budget).
	Config string `toml:"config"`
	// Set are overrides applied after the sweep's.
	Set []string `toml:"set"`
	// Metric is the validation metric that chooses the learning rate and
	// that the report leads with; empty: the run file's metric_for_best.
	Metric string `toml:"metric"`
}

// Setting is one [[setting]]: a strategy with its options.
type Setting struct {
	Name string `toml:"name"`
	// Label is the name plots and tables show; empty: Name.
	Label string `toml:"label"`
	// Set are the overrides that make the setting (strategy.name=...,
	// adapter.bottleneck=...), applied after the task's.
	Set []string `toml:"set"`
	// LRs is the learning-rate set searched on validation. Exactly one of
	// LRs and LRFrom is given.
	LRs []float64 `toml:"lrs"`
	// LRFrom names the setting whose chosen learning rate this one uses
	// (per task): one search per strategy rather than per option.
	LRFrom string `toml:"lr_from"`
}

// Ablation is the [ablation] table: which trained adapter of every task
// the layer ablation evaluates.
type Ablation struct {
	// Setting is an adapters setting; empty: no ablation. Its run with the
	// first seed at the chosen learning rate is ablated.
	Setting string `toml:"setting"`
	// Split is validation (default) or test.
	Split string `toml:"split"`
}

// Quick is the [quick] table: what --quick changes, for a run of a few
// minutes that proves the pipeline (CI) rather than measures anything.
type Quick struct {
	Out      string   `toml:"out"`
	Seeds    []uint64 `toml:"seeds"`
	Tasks    []string `toml:"tasks"`
	Settings []string `toml:"settings"`
	// MaxLRs keeps the first N learning rates of each search (0 = all).
	MaxLRs int      `toml:"max_lrs"`
	Set    []string `toml:"set"`
}

// Plan is a loaded sweep: the file with --quick applied, paths resolved.
type Plan struct {
	// Path is the sweep file; Quick tells whether --quick applies.
	Path  string
	Quick bool
	File
	// metrics caches each task's validation metric (TaskMetric); hashes
	// each run's ConfigHash by RunKey (results are checked against it
	// every time they are loaded, hundreds of times in a sweep).
	metrics, hashes map[string]string
}

// Load reads a sweep file and applies [quick] when quick is set. Errors name
// the file and the key.
func Load(path string, quick bool) (*Plan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var f File
	md, err := toml.Decode(string(raw), &f)
	if err != nil {
		return nil, fmt.Errorf("sweep %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("sweep %s: unknown key %s (see docs/sweep.md)", path, strings.Join(keys, ", "))
	}
	p := &Plan{Path: path, Quick: quick, File: f, metrics: map[string]string{}, hashes: map[string]string{}}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", path, err)
	}
	if quick {
		if err := p.applyQuick(); err != nil {
			return nil, fmt.Errorf("sweep %s: %w", path, err)
		}
	}
	return p, nil
}

// validate checks names, references and learning rates.
func (p *Plan) validate() error {
	s := p.Sweep
	switch {
	case s.Out == "":
		return fmt.Errorf("sweep.out: not set")
	case len(s.Seeds) == 0:
		return fmt.Errorf("sweep.seeds: empty")
	case len(p.Tasks) == 0:
		return fmt.Errorf("task: no [[task]]")
	case len(p.Settings) == 0:
		return fmt.Errorf("setting: no [[setting]]")
	}
	if err := uniqueSeeds("sweep.seeds", s.Seeds); err != nil {
		return err
	}
	tasks := map[string]bool{}
	for i, t := range p.Tasks {
		switch {
		case !goodName(t.Name):
			return fmt.Errorf("task[%d].name = %q: want letters, digits, '-' and '_'", i, t.Name)
		case tasks[t.Name]:
			return fmt.Errorf("task[%d].name = %q: listed twice", i, t.Name)
		case t.Config == "":
			return fmt.Errorf("task %s: config: not set", t.Name)
		}
		tasks[t.Name] = true
	}
	settings := map[string]*Setting{}
	for i := range p.Settings {
		st := &p.Settings[i]
		if !goodName(st.Name) || st.Name == "ablation" {
			return fmt.Errorf("setting[%d].name = %q: want letters, digits, '-' and '_' (not \"ablation\")", i, st.Name)
		}
		if settings[st.Name] != nil {
			return fmt.Errorf("setting[%d].name = %q: listed twice", i, st.Name)
		}
		settings[st.Name] = st
	}
	for _, st := range p.Settings {
		if err := p.validateSetting(st, settings); err != nil {
			return err
		}
	}
	if a := p.Ablation.Setting; a != "" && settings[a] == nil {
		return fmt.Errorf("ablation.setting = %q: no such setting", a)
	}
	switch p.Ablation.Split {
	case "", "validation", "test":
	default:
		return fmt.Errorf("ablation.split = %q: want validation or test", p.Ablation.Split)
	}
	return nil
}

func (p *Plan) validateSetting(st Setting, settings map[string]*Setting) error {
	switch {
	case len(st.LRs) > 0 && st.LRFrom != "":
		return fmt.Errorf("setting %s: set lrs or lr_from, not both", st.Name)
	case len(st.LRs) == 0 && st.LRFrom == "":
		return fmt.Errorf("setting %s: lrs: empty (or set lr_from)", st.Name)
	case st.LRFrom != "":
		from := settings[st.LRFrom]
		if from == nil {
			return fmt.Errorf("setting %s: lr_from = %q: no such setting", st.Name, st.LRFrom)
		}
		if from.LRFrom != "" {
			return fmt.Errorf("setting %s: lr_from = %q, which takes its rate from %q itself: name the searched one", st.Name, st.LRFrom, from.LRFrom)
		}
	}
	seen := map[float64]bool{}
	for _, lr := range st.LRs {
		if !(lr > 0) || math.IsInf(lr, 0) || seen[lr] {
			return fmt.Errorf("setting %s: lrs: %v is not a new positive number", st.Name, lr)
		}
		seen[lr] = true
	}
	return nil
}

// applyQuick applies [quick]: another output folder, seeds, a subset of
// tasks and settings, shorter searches and extra overrides.
func (p *Plan) applyQuick() error {
	q := p.File.Quick
	if q.Out == "" {
		return fmt.Errorf("quick.out: not set (the quick runs must not mix with the full sweep's)")
	}
	p.Sweep.Out = q.Out
	if len(q.Seeds) > 0 {
		if err := uniqueSeeds("quick.seeds", q.Seeds); err != nil {
			return err
		}
		p.Sweep.Seeds = q.Seeds
	}
	p.Sweep.Set = append(append([]string(nil), p.Sweep.Set...), q.Set...)
	if len(q.Tasks) > 0 {
		var keep []Task
		for _, name := range q.Tasks {
			t, ok := p.Task(name)
			if !ok {
				return fmt.Errorf("quick.tasks: no task %q", name)
			}
			keep = append(keep, t)
		}
		p.Tasks = keep
	}
	if len(q.Settings) > 0 {
		var keep []Setting
		for _, name := range q.Settings {
			st, ok := p.Setting(name)
			if !ok {
				return fmt.Errorf("quick.settings: no setting %q", name)
			}
			keep = append(keep, st)
		}
		for _, st := range keep {
			if st.LRFrom != "" && !contains(q.Settings, st.LRFrom) {
				return fmt.Errorf("quick.settings: %s takes its learning rate from %s, which is not listed", st.Name, st.LRFrom)
			}
		}
		if a := p.Ablation.Setting; a != "" && !contains(q.Settings, a) {
			p.Ablation.Setting = ""
		}
		p.Settings = keep
	}
	if q.MaxLRs < 0 {
		return fmt.Errorf("quick.max_lrs = %d: must be >= 0", q.MaxLRs)
	}
	if q.MaxLRs > 0 {
		for i := range p.Settings {
			if len(p.Settings[i].LRs) > q.MaxLRs {
				p.Settings[i].LRs = p.Settings[i].LRs[:q.MaxLRs]
			}
		}
	}
	return nil
}

// Mode is "quick" or "full", the name reports and markers use.
func (p *Plan) Mode() string {
	if p.Quick {
		return "quick"
	}
	return "full"
}

// Task returns the task called name.
func (p *Plan) Task(name string) (Task, bool) {
	for _, t := range p.Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}

// Setting returns the setting called name.
func (p *Plan) Setting(name string) (Setting, bool) {
	for _, s := range p.Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// LabelOf is a setting's display name.
func (s Setting) LabelOf() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Name
}

// Searched reports whether the setting runs its own learning-rate search.
func (s Setting) Searched() bool { return s.LRFrom == "" }

// Probe is the setting whose search decides s's learning rate.
func (s Setting) Probe() string {
	if s.LRFrom != "" {
		return s.LRFrom
	}
	return s.Name
}

// ReportDir is where the report of the plan goes by default.
func (p *Plan) ReportDir() string { return filepath.Join(p.Sweep.Out, "report") }

func goodName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func uniqueSeeds(key string, seeds []uint64) error {
	seen := map[uint64]bool{}
	for _, s := range seeds {
		if seen[s] {
			return fmt.Errorf("%s: seed %d listed twice", key, s)
		}
		seen[s] = true
	}
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
