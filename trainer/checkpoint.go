package trainer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/model/safetensors"
)

// A checkpoint is one safetensors file holding everything a resumed run
// needs to continue bitwise-identically: the trained tensors ("param/NAME"),
// the AdamW moments ("adam_m/NAME", "adam_v/NAME") and, in __metadata__:
//
//	format           "houlsby-checkpoint"
//	format_version   "1"
//	adapter          the adapter file's metadata map, as JSON (adapter.File.Metadata)
//	state            State as JSON (step, data position, RNG state, schedule, ...)
//	config           the effective run config (TOML), to refuse resuming another run
//
// It is written atomically (safetensors.Write: temporary file, fsync,
// rename), so a kill at any moment leaves the previous checkpoint intact.
const (
	// CheckpointFormat is the "format" metadata value of checkpoints.
	CheckpointFormat = "houlsby-checkpoint"
	// CheckpointVersion is the checkpoint format version written and the
	// newest one read.
	CheckpointVersion = 1
)

// State is the loop's state apart from tensors.
type State struct {
	// Step is the number of optimizer steps taken (also AdamW's step count).
	Step int `json:"step"`
	// Epoch and Batch are the data position: the next batch to train is
	// batch Batch of epoch Epoch's EpochOrder.
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
	// RNG is the trainer RNG's state (RNG.State), e.g. for dropout seeds.
	RNG []byte `json:"rng"`
	// Seed is train.seed (EpochOrder derives each epoch's order from it).
	Seed uint64 `json:"seed"`
	// Schedule is the learning-rate schedule.
	Schedule Schedule `json:"schedule"`
	// Best is the best value of the metric for the best checkpoint so far
	// (valid when HasBest), reached at BestStep; BadEvals counts evaluations
	// since then (early stopping).
	HasBest  bool    `json:"has_best"`
	Best     float64 `json:"best"`
	BestStep int     `json:"best_step"`
	BadEvals int     `json:"bad_evals"`
	// NonFinite counts steps skipped for a NaN or Inf loss or gradient.
	NonFinite int `json:"non_finite"`
}

// Checkpoint is the content of a checkpoint file.
type Checkpoint struct {
	// Adapter holds the trained tensors and their description.
	Adapter *adapter.File
	// M and V are the AdamW moments by tensor name.
	M, V map[string][]float32
	// State is the loop state.
	State State
	// Config is the effective run configuration (TOML text).
	Config string
}

// SaveCheckpoint writes c to path atomically.
func SaveCheckpoint(path string, c *Checkpoint) error {
	where := "checkpoint " + path
	if err := c.Adapter.Check(where); err != nil {
		return err
	}
	am, err := c.Adapter.Metadata()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	amj, err := json.Marshal(am)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	sj, err := json.Marshal(c.State)
	if err != nil {
		return fmt.Errorf("%s: state: %w", where, err)
	}
	var ts []safetensors.NamedTensor
	for _, t := range c.Adapter.Tensors {
		ts = append(ts, safetensors.F32Tensor("param/"+t.Name, t.Shape, t.Data))
		for _, mv := range []struct {
			prefix string
			m      map[string][]float32
		}{{"adam_m/", c.M}, {"adam_v/", c.V}} {
			d, ok := mv.m[t.Name]
			if !ok || len(d) != len(t.Data) {
				return fmt.Errorf("%s: optimizer state %s%s missing or of the wrong size", where, mv.prefix, t.Name)
			}
			ts = append(ts, safetensors.F32Tensor(mv.prefix+t.Name, t.Shape, d))
		}
	}
	meta := map[string]string{
		"format":         CheckpointFormat,
		"format_version": strconv.Itoa(CheckpointVersion),
		"adapter":        string(amj),
		"state":          string(sj),
		"config":         c.Config,
	}
	if err := safetensors.Write(path, ts, meta); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint. When expectFingerprint is not empty, a
// checkpoint for another base model is refused.
func LoadCheckpoint(path, expectFingerprint string) (*Checkpoint, error) {
	where := "checkpoint " + path
	sf, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer sf.Close()
	meta := sf.Metadata()
	if meta["format"] != CheckpointFormat {
		return nil, fmt.Errorf("%s: metadata format = %q, want %q (not a checkpoint)", where, meta["format"], CheckpointFormat)
	}
	v, err := strconv.Atoi(meta["format_version"])
	if err != nil || v < 1 {
		return nil, fmt.Errorf("%s: bad format_version %q", where, meta["format_version"])
	}
	if v > CheckpointVersion {
		return nil, fmt.Errorf("%s: format version %d is newer than this program reads (%d)", where, v, CheckpointVersion)
	}
	var am map[string]string
	if err := json.Unmarshal([]byte(meta["adapter"]), &am); err != nil {
		return nil, fmt.Errorf("%s: metadata adapter: %w", where, err)
	}
	f, err := adapter.FromMetadata(where, am, expectFingerprint)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Adapter: f, M: map[string][]float32{}, V: map[string][]float32{}, Config: meta["config"]}
	if err := json.Unmarshal([]byte(meta["state"]), &c.State); err != nil {
		return nil, fmt.Errorf("%s: metadata state: %w", where, err)
	}
	names := sf.Names()
	sort.Strings(names)
	for _, n := range names {
		kind, name, ok := strings.Cut(n, "/")
		if !ok {
			return nil, fmt.Errorf("%s: unexpected tensor %q", where, n)
		}
		data, err := sf.ReadFloat32(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		info, _ := sf.Info(n)
		switch kind {
		case "param":
			f.Tensors = append(f.Tensors, adapter.Tensor{Name: name, Shape: append([]int(nil), info.Shape...), Data: data})
		case "adam_m":
			c.M[name] = data
		case "adam_v":
			c.V[name] = data
		default:
			return nil, fmt.Errorf("%s: unexpected tensor %q", where, n)
		}
	}
	if err := f.Check(where); err != nil {
		return nil, err
	}
	for _, t := range f.Tensors {
		if len(c.M[t.Name]) != len(t.Data) || len(c.V[t.Name]) != len(t.Data) {
			return nil, fmt.Errorf("%s: optimizer state of %s missing or of the wrong size", where, t.Name)
		}
	}
	if len(c.M) != len(f.Tensors) || len(c.V) != len(f.Tensors) {
		return nil, fmt.Errorf("%s: optimizer state for tensors that do not train", where)
	}
	return c, nil
}
