package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchLines decodes bench's JSON Lines output.
func benchLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &v), "line %q", l)
		lines = append(lines, v)
	}
	return lines
}

// The harness's path through bench: real texts with dynamic padding, the
// batches dumped for the other programs, JSON Lines, repetitions released
// one line of stdin at a time, and a CPU profile.
func TestBenchDataJSON(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	// Texts of 1 to 4 words: each batch is padded to its own longest row.
	data := filepath.Join(dir, "texts.jsonl")
	var texts strings.Builder
	for i := 0; i < 20; i++ {
		texts.WriteString(`{"text": "` + strings.Repeat("good ", 1+i%4) + `"}` + "\n")
	}
	require.NoError(t, os.WriteFile(data, []byte(texts.String()), 0o644))
	dump := filepath.Join(dir, "batches.json")
	code, out, errOut := runCLI("bench", "--model", dir, "--device", "cpu", "--bottleneck", "4", "--data", data, "--batch-size", "5", "--batches", "3",
		"--seq-len", "16", "--dump-batches", dump)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "wrote 3 batches")
	var d struct {
		Tokens     int `json:"tokens"`
		RealTokens int `json:"real_tokens"`
		Batches    []struct {
			IDs    [][]int32 `json:"ids"`
			Labels []int32   `json:"labels"`
		} `json:"batches"`
	}
	raw, err := os.ReadFile(dump)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Len(t, d.Batches, 3)
	assert.Less(t, d.RealTokens, d.Tokens, "texts of different lengths are padded")
	for _, b := range d.Batches {
		assert.Len(t, b.IDs, 5)
		assert.Len(t, b.Labels, 5)
		for _, row := range b.IDs {
			assert.Equal(t, int32(2), row[0], "rows start with [CLS]")
			assert.Equal(t, int32(3), row[len(row)-1], "rows end with [SEP], unpadded")
		}
	}

	benchStdin = strings.NewReader("go\ngo\n")
	defer func() { benchStdin = os.Stdin }()
	prof := filepath.Join(dir, "cpu.prof")
	code, out, errOut = runCLI("bench", "--model", dir, "--device", "cpu", "--bottleneck", "4", "--data", data, "--batch-size", "5", "--batches", "3",
		"--seq-len", "16", "--reps", "2", "--mode", "train", "--json", "--sync-stdin", "--cpuprofile", prof)
	require.Equal(t, 0, code, errOut)
	lines := benchLines(t, out)
	require.Len(t, lines, 5, out) // setup, ready, 2 reps, summary
	assert.Equal(t, "setup", lines[0]["event"])
	assert.Equal(t, float64(3), lines[0]["batches"])
	assert.Less(t, lines[0]["real_tokens"].(float64), lines[0]["tokens"].(float64), "texts of different lengths are padded")
	assert.Equal(t, "ready", lines[1]["event"])
	for _, l := range lines[2:4] {
		assert.Equal(t, "rep", l["event"])
		assert.Greater(t, l["wall_s"].(float64), 0.0)
	}
	assert.Equal(t, "summary", lines[4]["event"])
	st, err := os.Stat(prof)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(0))

	// stdin closed before the second repetition: an error naming the flag.
	benchStdin = strings.NewReader("go\n")
	code, _, errOut = runCLI("bench", "--model", dir, "--device", "cpu", "--bottleneck", "4", "--batch-size", "2", "--seq-len", "8", "--steps", "1",
		"--reps", "2", "--mode", "forward", "--json", "--sync-stdin")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--sync-stdin: waiting for repetition 2")
}

func TestBenchErrors(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "backward"}, `--mode "backward": want train, forward or both`},
		{[]string{"--reps", "0"}, "--reps 0: must be positive"},
		{[]string{"--warmup", "-2"}, "--warmup -2"},
		{[]string{"--data", filepath.Join(dir, "missing.jsonl")}, "missing.jsonl"},
		{[]string{"--data", filepath.Join(dir, "train.jsonl"), "--text-field", "body"}, `"body"`},
	} {
		code, _, errOut := runCLI(append([]string{"bench", "--model", dir, "--device", "cpu", "--bottleneck", "4", "--seq-len", "16"}, c.args...)...)
		assert.Equal(t, 1, code, c.args)
		assert.Contains(t, errOut, c.want, c.args)
	}
}
