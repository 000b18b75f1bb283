// Package gpuverify describes the results file that gpu-verify.sh (the GPU
// verification bundle's one command, scripts/gpu-verify/) writes, schema
// houlsby-gpu-verify/1, and checks a file against it: the parts in their
// order, a known status each, times within the limits, counts that add up.
// Its tests check a rehearsal's file in CI (make gpu-rehearse) and, given
// GPU_VERIFY_RESULTS, any file a GPU machine sends back:
//
//	GPU_VERIFY_RESULTS=gpu-results.json go test -run TestResultsFile ./scripts/gpuverify
package gpuverify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Schema is the value of the file's "schema" field.
const Schema = "houlsby-gpu-verify/1"

// MaxSeconds is the most a run may take (the 8 minutes);
// gpu-verify.sh's budget keeps its parts inside it.
const MaxSeconds = 480

// BundleLimit is the most bytes a GPU machine accepts to be carried to it.
const BundleLimit = 64 << 20

// PartNames are the parts in gpu-verify.sh's order (verify.py's PARTS; a
// test checks that the two scripts agree with this list).
var PartNames = []string{
	"environment", "dispatch", "driver", "conformance_f32", "conformance_bf16", "model_step",
	"train200_f32", "train200_bf16", "train200_graphs", "kernels",
	"bert_base_ours", "bert_base_torch_eager", "bert_base_torch_compile",
}

// Statuses a part may have (verify.py's docstring says what each means).
var Statuses = []string{"pass", "fail", "timeout", "skipped", "rehearsed"}

// Results is the whole file.
type Results struct {
	Schema   string          `json:"schema"`
	Mode     string          `json:"mode"` // "gpu" or "rehearsal"
	Started  string          `json:"started"`
	Finished string          `json:"finished"`
	ElapsedS float64         `json:"elapsed_s"`
	BudgetS  float64         `json:"budget_s"`
	Bundle   Bundle          `json:"bundle"`
	Host     map[string]any  `json:"host"`
	Device   json.RawMessage `json:"device"` // the probe's gpu.DeviceInfo; null without a GPU
	Parts    []Part          `json:"parts"`
	Counts   map[string]int  `json:"counts"`
}

// Bundle is the bundle's MANIFEST.json.
type Bundle struct {
	Commit    string          `json:"commit"`
	Dirty     bool            `json:"dirty"`
	Built     string          `json:"built"`
	Go        string          `json:"go"`
	NVCC      string          `json:"nvcc"`
	SizeBytes int64           `json:"size_bytes"`
	Files     map[string]File `json:"files"`
}

// File is one file of the bundle.
type File struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Part is one part's outcome.
type Part struct {
	Name     string         `json:"name"`
	Title    string         `json:"title"`
	NeedsGPU bool           `json:"needs_gpu"`
	Status   string         `json:"status"`
	Seconds  float64        `json:"seconds"`
	LimitS   int            `json:"limit_s"`
	RC       int            `json:"rc"`
	Summary  string         `json:"summary"`
	Details  map[string]any `json:"details"`
	LogTail  string         `json:"log_tail"`
}

var (
	hex40  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	status = map[string]bool{}
)

func init() {
	for _, s := range Statuses {
		status[s] = true
	}
}

// Parse decodes a results file (unknown fields are errors) and checks it.
func Parse(data []byte) (*Results, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Results
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("gpuverify: decoding the results: %w", err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Check returns the first way r breaks the schema.
func (r *Results) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gpuverify: "+format, args...)
	}
	if r.Schema != Schema {
		return bad("schema %q, want %q", r.Schema, Schema)
	}
	if r.Mode != "gpu" && r.Mode != "rehearsal" {
		return bad("mode %q, want gpu or rehearsal", r.Mode)
	}
	start, err := time.Parse(time.RFC3339, r.Started)
	if err != nil {
		return bad("started: %w", err)
	}
	end, err := time.Parse(time.RFC3339, r.Finished)
	if err != nil {
		return bad("finished: %w", err)
	}
	if end.Before(start) || r.ElapsedS < 0 || r.ElapsedS > MaxSeconds || r.BudgetS <= 0 || r.BudgetS > MaxSeconds {
		return bad("times: started %s, finished %s, elapsed %vs, budget %vs (at most %ds)", r.Started, r.Finished, r.ElapsedS, r.BudgetS, MaxSeconds)
	}
	if err := r.Bundle.check(); err != nil {
		return err
	}
	if len(r.Parts) != len(PartNames) {
		return bad("%d parts, want %d (%v)", len(r.Parts), len(PartNames), PartNames)
	}
	counts := map[string]int{}
	for i, p := range r.Parts {
		if p.Name != PartNames[i] {
			return bad("part %d is %q, want %q", i, p.Name, PartNames[i])
		}
		if !status[p.Status] {
			return bad("part %s: status %q, want one of %v", p.Name, p.Status, Statuses)
		}
		if p.Summary == "" || p.Title == "" {
			return bad("part %s: empty title or summary", p.Name)
		}
		// timeout kills at the limit and 5 s later for good.
		if p.Seconds < 0 || (p.Status != "skipped" && p.Seconds > float64(p.LimitS)+10) {
			return bad("part %s: %vs for a limit of %ds", p.Name, p.Seconds, p.LimitS)
		}
		if r.Mode == "rehearsal" && (p.Status == "fail" || p.Status == "timeout") {
			return bad("rehearsal part %s: %s: %s", p.Name, p.Status, p.Summary)
		}
		if r.Mode == "gpu" && p.Status == "rehearsed" {
			return bad("part %s is rehearsed in a gpu run", p.Name)
		}
		counts[p.Status]++
	}
	for _, s := range Statuses {
		if counts[s] != r.Counts[s] {
			return bad("counts[%s] = %d, but %d parts have that status", s, r.Counts[s], counts[s])
		}
	}
	if r.Mode == "gpu" && r.Parts[1].Status == "pass" && (len(r.Device) == 0 || string(r.Device) == "null") {
		return bad("dispatch passed but the file names no device")
	}
	return nil
}

func (b Bundle) check() error {
	if !hex40.MatchString(b.Commit) {
		return fmt.Errorf("gpuverify: bundle commit %q is not a commit id", b.Commit)
	}
	if b.SizeBytes <= 0 || b.SizeBytes > BundleLimit {
		return fmt.Errorf("gpuverify: bundle size %d bytes, want 1..%d", b.SizeBytes, BundleLimit)
	}
	var sum int64
	for name, f := range b.Files {
		if !hex64.MatchString(f.SHA256) {
			return fmt.Errorf("gpuverify: bundle file %s: sha256 %q", name, f.SHA256)
		}
		sum += f.Bytes
	}
	if sum != b.SizeBytes {
		return fmt.Errorf("gpuverify: bundle files add up to %d bytes, size_bytes says %d", sum, b.SizeBytes)
	}
	for _, need := range []string{"bin/train-gpu.gz", "bin/train-gpu-cuda.gz", "bin/gpu.test.gz", "bin/cuda.test.gz", "gpu-verify.sh", "assets/cpu_curve.json"} {
		if _, ok := b.Files[need]; !ok {
			return fmt.Errorf("gpuverify: the bundle lacks %s", need)
		}
	}
	return nil
}

// Failed names the parts that failed or timed out.
func (r *Results) Failed() []string {
	var out []string
	for _, p := range r.Parts {
		if p.Status == "fail" || p.Status == "timeout" {
			out = append(out, p.Name)
		}
	}
	return out
}
