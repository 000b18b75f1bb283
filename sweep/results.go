package sweep

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/houlsby/adapters/internal/atomicfile"
)

// ResultFileName is the result of a finished run, in its folder.
const ResultFileName = "result.json"

// ResultsFileName is the merged JSON Lines of every result, in Sweep.Out.
const ResultsFileName = "results.jsonl"

// Result is one finished run: one line of results.jsonl.
type Result struct {
	// Key is RunKey(task, setting, lr, seed); Phase the phase that ran it.
	Key     string `json:"key"`
	Task    string `json:"task"`
	Setting string `json:"setting"`
	Phase   string `json:"phase"`
	// Strategy and Settings are what the run trained: strategy.name and the
	// options that matter for it (bottleneck, placement, train_layernorm,
	// top_k, head, max_length, ...).
	Strategy string         `json:"strategy"`
	Settings map[string]any `json:"settings"`
	LR       float64        `json:"lr"`
	Seed     uint64         `json:"seed"`
	// Metric is the task's validation metric (TaskMetric).
	Metric string `json:"metric"`
	// TrainedParams, BackboneParams and TrainedShare: adapter.Count.
	TrainedParams  int64   `json:"trained_params"`
	BackboneParams int64   `json:"backbone_params"`
	TrainedShare   float64 `json:"trained_share"`
	// Validation and Test are the final scores that fit the task
	// (trainer.Scores.Summary); Test is absent without a test set.
	Validation map[string]float64 `json:"validation"`
	Test       map[string]float64 `json:"test,omitempty"`
	// Steps, TrainExamples and TrainTokens count the optimizer steps and
	// what they read.
	Steps         int   `json:"steps"`
	TrainExamples int   `json:"train_examples"`
	TrainTokens   int64 `json:"train_tokens"`
	// WallSeconds is the whole job process (load, tokenise, train,
	// evaluate, write); TrainSeconds the training loop (its validations
	// included); CPUSeconds user + system time of the process;
	// TokensPerSecond the training tokens per second of the loop without
	// its validations; PeakRSSBytes the process's maximum resident set.
	WallSeconds     float64 `json:"wall_s"`
	TrainSeconds    float64 `json:"train_s"`
	CPUSeconds      float64 `json:"cpu_s"`
	TokensPerSecond float64 `json:"tokens_per_s"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	// Commit is the source revision, Device the backend, Host, CPUs and Go
	// the machine; Finished is RFC 3339 UTC.
	Commit   string `json:"commit"`
	Device   string `json:"device"`
	Host     string `json:"host"`
	CPUs     int    `json:"cpus"`
	Go       string `json:"go"`
	Finished string `json:"finished"`
	// ConfigHash is ConfigHash of the run's configuration.
	ConfigHash string `json:"config_hash"`
}

// WriteResult writes r as dir/result.json, atomically.
func WriteResult(dir string, r *Result) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("sweep: result %s: %w", r.Key, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ResultFileName), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}

// ParseResult decodes one result; errors name where.
func ParseResult(where string, data []byte) (*Result, error) {
	var r Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("sweep: %s: %w", where, err)
	}
	if r.Key == "" || r.Task == "" || r.Setting == "" || r.ConfigHash == "" {
		return nil, fmt.Errorf("sweep: %s: a result needs key, task, setting and config_hash", where)
	}
	for _, v := range []float64{r.LR, r.TrainedShare, r.WallSeconds, r.CPUSeconds} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("sweep: %s: lr, trained_share, wall_s and cpu_s must be finite and >= 0", where)
		}
	}
	return &r, nil
}

// Results are the results of a plan's runs, by RunKey.
type Results struct {
	byKey map[string]*Result
	// Stale counts result files of this plan's runs whose configuration
	// has changed since (they are rerun and not reported); Foreign counts
	// results of tasks or settings the plan does not have.
	Stale, Foreign int
}

// Get returns the result of a run, or nil.
func (rs *Results) Get(task, setting string, lr float64, seed uint64) *Result {
	return rs.byKey[RunKey(task, setting, lr, seed)]
}

// All returns every result, sorted by key.
func (rs *Results) All() []*Result {
	out := make([]*Result, 0, len(rs.byKey))
	for _, k := range sortedKeys(rs.byKey) {
		out = append(out, rs.byKey[k])
	}
	return out
}

// Len is the number of results.
func (rs *Results) Len() int { return len(rs.byKey) }

// add keeps r when its configuration is the plan's current one.
func (p *Plan) add(rs *Results, r *Result) error {
	if _, ok := p.Task(r.Task); !ok {
		rs.Foreign++
		return nil
	}
	if _, ok := p.Setting(r.Setting); !ok {
		rs.Foreign++
		return nil
	}
	h, err := p.runHash(r.Task, r.Setting, r.LR, r.Seed)
	if err != nil {
		return err
	}
	if h != r.ConfigHash {
		rs.Stale++
		return nil
	}
	rs.byKey[RunKey(r.Task, r.Setting, r.LR, r.Seed)] = r
	return nil
}

// runHash is ConfigHash of a run's configuration, computed once per run
// and plan (the output folder, which may change with --out, is not part of
// it).
func (p *Plan) runHash(task, setting string, lr float64, seed uint64) (string, error) {
	key := RunKey(task, setting, lr, seed)
	if h, ok := p.hashes[key]; ok {
		return h, nil
	}
	c, err := p.RunConfig(task, setting, lr, seed)
	if err != nil {
		return "", err
	}
	h, err := ConfigHash(c)
	if err != nil {
		return "", err
	}
	p.hashes[key] = h
	return h, nil
}

// LoadResults reads every result.json under the plan's output folder (runs
// copied in from other machines included) and keeps those that match the
// plan's current configuration.
func (p *Plan) LoadResults() (*Results, error) {
	rs := &Results{byKey: map[string]*Result{}}
	err := filepath.WalkDir(p.Sweep.Out, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == p.Sweep.Out {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || d.Name() != ResultFileName {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r, err := ParseResult(path, data)
		if err != nil {
			return err
		}
		return p.add(rs, r)
	})
	if err != nil {
		return nil, fmt.Errorf("sweep: results under %s: %w", p.Sweep.Out, err)
	}
	return rs, nil
}

// WriteJSONL writes every result as one JSON line, sorted by key,
// atomically: the merged results.jsonl.
func (rs *Results) WriteJSONL(path string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		for _, r := range rs.All() {
			js, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", js); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadJSONL reads results.jsonl lines (for tools that have only the merged
// file); errors name the file and line.
func ReadJSONL(path string, r io.Reader) ([]*Result, error) {
	var out []*Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		res, err := ParseResult(fmt.Sprintf("%s:%d", path, line), sc.Bytes())
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sweep: %s:%d: %w", path, line+1, err)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
