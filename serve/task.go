package serve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/trainer"
)

// TaskInfo describes a loaded task (GET /v1/tasks).
type TaskInfo struct {
	// Name is the task's name (an adapter file's name without the extension).
	Name string `json:"name"`
	// Path is the file it was loaded from ("" when added from memory).
	Path string `json:"path,omitempty"`
	// Labels are the classes, in the head's order; empty for regression.
	Labels     []string `json:"labels"`
	Regression bool     `json:"regression"`
	// Strategy is what training tuned (adapters, layernorm, head, full,
	// top_k, bitfit); TrainLayerNorm whether adapters came with LayerNorms.
	Strategy       string          `json:"strategy"`
	TrainLayerNorm bool            `json:"train_layernorm,omitempty"`
	Adapter        *adapter.Config `json:"adapter,omitempty"`
	Head           string          `json:"head"`
	// BaseFingerprint is the base model the file was trained on (always
	// the served one: others are refused).
	BaseFingerprint string `json:"base_fingerprint"`
	// SharesBackbone is true when the task runs in mixed batches on the
	// shared frozen backbone, false when it needs a model of its own
	// (its strategy changed the backbone's weights or biases).
	SharesBackbone bool `json:"shares_backbone"`
	// MemoryBytes is what the task costs on the device: its own tensors
	// on the shared backbone, or its whole model instance (parameters and
	// activation buffers).
	MemoryBytes int64 `json:"memory_bytes"`
	// Metrics are the scores the training run logged (the last validation
	// evaluation and the test evaluation), read from the run's log next to
	// the file (see RunMetrics); nil when there is none.
	Metrics map[string]map[string]float64 `json:"metrics,omitempty"`
	// Version counts loads within this process (a replaced task gets a
	// new one); LoadedAt is when this version was loaded.
	Version  int64     `json:"version"`
	LoadedAt time.Time `json:"loaded_at"`
}

// task is one loaded version of a task.
type task struct {
	name       string
	version    int64
	file       *adapter.File
	labels     []string
	regression bool
	info       TaskInfo

	eng  engine
	id   int          // its parameter set in the shared engine
	inst *model.Model // its own model (tasks that do not share the backbone)

	// rows counts the task's inputs that are queued or running; a removed
	// or replaced version is freed when it reaches zero.
	rows sync.WaitGroup
}

var versions atomic.Int64

// sharesBackbone reports whether a strategy leaves the backbone's weight
// matrices and biases as pretrained, so its tasks can share one backbone:
// adapters (with or without LayerNorms), LayerNorm only and head only.
// Full fine-tuning, top-k layers and BitFit change them.
func sharesBackbone(s adapter.Strategy) bool {
	switch s.Name {
	case adapter.StratAdapters, adapter.StratLayerNorm, adapter.StratHead:
		return true
	}
	return false
}

// newTask prepares f for serving: checks it against the base model and
// uploads its tensors, into the shared backbone or a model of its own.
func (p *Predictor) newTask(name, path string, f *adapter.File) (*task, error) {
	if f.BaseFingerprint != p.ck.Fingerprint {
		return nil, fmt.Errorf("made for base model %q, but the served base model is %q", f.BaseFingerprint, p.ck.Fingerprint)
	}
	if f.Base != adapter.BaseOf(p.ck.Config) || f.BaseHasPooler != p.ck.HasPooler {
		return nil, fmt.Errorf("made for a base model of another shape (%+v, pooler %v)", f.Base, f.BaseHasPooler)
	}
	if err := f.Check("adapter"); err != nil {
		return nil, err
	}
	t := &task{name: name, version: versions.Add(1), file: f, labels: f.Labels, regression: f.Head.NumLabels == 1}
	t.info = TaskInfo{
		Name: name, Path: path, Labels: append([]string{}, f.Labels...), Regression: t.regression,
		Strategy: f.Strategy.Name, Adapter: f.Adapter, Head: f.Head.Kind, BaseFingerprint: f.BaseFingerprint,
		SharesBackbone: sharesBackbone(f.Strategy), Version: t.version, LoadedAt: time.Now().UTC(),
	}
	if f.Strategy.UsesAdapters() {
		t.info.TrainLayerNorm = f.Strategy.TrainLayerNorm
	}
	if path != "" {
		t.info.Metrics = RunMetrics(path)
	}
	if !t.regression && len(t.labels) != f.Head.NumLabels {
		return nil, fmt.Errorf("%d labels for a head of %d outputs", len(t.labels), f.Head.NumLabels)
	}
	p.engMu.Lock()
	defer p.engMu.Unlock()
	if t.info.SharesBackbone {
		if err := p.addShared(t); err != nil {
			return nil, err
		}
		return t, nil
	}
	m, err := trainer.NewModel(p.be, p.ck, f, p.opts.MaxBatchRows, p.opts.MaxLength, 0)
	if err != nil {
		return nil, err
	}
	t.inst, t.eng = m, &instanceEngine{m: m, pad: p.tok.PadID()}
	t.info.MemoryBytes = m.Bytes()
	return t, nil
}

// RunMetrics reads the scores a training run logged for the adapter file at
// path, from the run's log next to it: "NAME.log.jsonl" for NAME.safetensors,
// or the run folder's "log.jsonl" for the files a run writes
// (adapter.safetensors, best.safetensors). It returns the last "eval"
// event's scores as "validation" and the "test" event's as "test", or nil
// when there is no log. Adapter files themselves carry no metrics (their
// format is unchanged), so a file copied without its log has none.
func RunMetrics(path string) map[string]map[string]float64 {
	dir, base := filepath.Split(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	candidates := []string{filepath.Join(dir, stem+".log.jsonl")}
	if base == trainer.AdapterFileName || base == trainer.BestFileName {
		candidates = append(candidates, filepath.Join(dir, trainer.LogFileName))
	}
	for _, c := range candidates {
		if m := readRunLog(c); m != nil {
			return m
		}
	}
	return nil
}

// readRunLog returns the last eval and test scores of a run log, nil when
// the file is missing or holds neither.
func readRunLog(path string) map[string]map[string]float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]map[string]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		key := map[any]string{"eval": "validation", "test": "test"}[ev["event"]]
		if key == "" {
			continue
		}
		scores := map[string]float64{}
		for k, v := range ev {
			if x, ok := v.(float64); ok && k != "step" && k != "epoch" {
				scores[k] = x
			}
		}
		out[key] = scores
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
