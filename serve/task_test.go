package serve_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/serve"
)

// TestRunMetrics: a task's metrics come from the run's log next to its
// file: NAME.log.jsonl, or log.jsonl beside a run's adapter.safetensors.
func TestRunMetrics(t *testing.T) {
	dir := t.TempDir()
	log := `{"event":"train","step":1,"loss":0.7}
{"event":"eval","step":5,"accuracy":0.8,"f1":0.5}
not json
{"event":"eval","step":10,"accuracy":0.9,"f1":0.75}
{"event":"test","accuracy":0.95,"f1":0.9}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "spam.log.jsonl"), []byte(log), 0o644))
	m := serve.RunMetrics(filepath.Join(dir, "spam.safetensors"))
	assert.Equal(t, map[string]map[string]float64{
		"validation": {"accuracy": 0.9, "f1": 0.75},
		"test":       {"accuracy": 0.95, "f1": 0.9},
	}, m)
	assert.Nil(t, serve.RunMetrics(filepath.Join(dir, "other.safetensors")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log.jsonl"), []byte(log), 0o644))
	assert.Equal(t, 0.95, serve.RunMetrics(filepath.Join(dir, "adapter.safetensors"))["test"]["accuracy"])
	assert.Nil(t, serve.RunMetrics(filepath.Join(dir, "x.safetensors")), "log.jsonl belongs to the run's own files only")
}
