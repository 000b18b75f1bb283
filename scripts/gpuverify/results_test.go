package gpuverify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResultsFile checks the results file named by GPU_VERIFY_RESULTS:
// `make gpu-rehearse` (CI) passes a rehearsal's, a person the file a GPU
// machine sent back. It prints the parts that did not pass.
func TestResultsFile(t *testing.T) {
	path := os.Getenv("GPU_VERIFY_RESULTS")
	if path == "" {
		t.Skip("GPU_VERIFY_RESULTS is not set (make gpu-rehearse sets it)")
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	r, err := Parse(raw)
	require.NoError(t, err, "%s", path)
	for _, p := range r.Parts {
		t.Logf("%-24s %-9s %6.1fs  %s", p.Name, p.Status, p.Seconds, p.Summary)
	}
	assert.Empty(t, r.Failed(), "failed or timed-out parts")
}

func example(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "rehearsal.json"))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// The committed example (a rehearsal's file) parses; each kind of damage is
// named.
func TestParse(t *testing.T) {
	r, err := Parse(encode(t, example(t)))
	require.NoError(t, err)
	assert.Equal(t, "rehearsal", r.Mode)
	assert.Len(t, r.Parts, len(PartNames))
	assert.Empty(t, r.Failed())

	part := func(m map[string]any, i int) map[string]any { return m["parts"].([]any)[i].(map[string]any) }
	for _, tc := range []struct {
		name   string
		damage func(m map[string]any)
		want   string
	}{
		{"schema", func(m map[string]any) { m["schema"] = "other/2" }, `schema "other/2"`},
		{"mode", func(m map[string]any) { m["mode"] = "dry" }, `mode "dry"`},
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, `unknown field "extra"`},
		{"over 8 minutes", func(m map[string]any) { m["elapsed_s"] = 481 }, "at most 480s"},
		{"missing part", func(m map[string]any) { m["parts"] = m["parts"].([]any)[1:] }, "12 parts, want 13"},
		{"order", func(m map[string]any) {
			p := m["parts"].([]any)
			p[0], p[1] = p[1], p[0]
		}, `part 0 is "dispatch", want "environment"`},
		{"status", func(m map[string]any) { part(m, 2)["status"] = "ok" }, `status "ok"`},
		{"a rehearsal with a failure", func(m map[string]any) {
			part(m, 6)["status"] = "fail"
			m["counts"].(map[string]any)["fail"] = 1
			m["counts"].(map[string]any)["pass"] = m["counts"].(map[string]any)["pass"].(float64) - 1
		}, "rehearsal part train200_f32: fail"},
		{"counts", func(m map[string]any) { m["counts"].(map[string]any)["pass"] = 99.0 }, "counts[pass] = 99"},
		{"over its limit", func(m map[string]any) { part(m, 6)["seconds"] = 100.0 }, "part train200_f32: 100s for a limit of 45s"},
		{"commit", func(m map[string]any) { m["bundle"].(map[string]any)["commit"] = "HEAD" }, `bundle commit "HEAD"`},
		{"bundle size", func(m map[string]any) { m["bundle"].(map[string]any)["size_bytes"] = float64(BundleLimit + 1) }, "bundle size"},
		{"gpu run without a device", func(m map[string]any) {
			m["mode"] = "gpu"
			for i := range m["parts"].([]any) {
				part(m, i)["status"] = "pass"
			}
			m["counts"] = map[string]any{"pass": float64(len(PartNames))}
		}, "dispatch passed but the file names no device"},
	} {
		m := example(t)
		tc.damage(m)
		_, err := Parse(encode(t, m))
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
}

// The part list here, in verify.py and in gpu-verify.sh is one list; the
// script's limits and budget keep a run inside MaxSeconds.
func TestScriptsAgree(t *testing.T) {
	py, err := os.ReadFile(filepath.Join("..", "gpu-verify", "verify.py"))
	require.NoError(t, err)
	var fromPy []string
	for _, m := range regexp.MustCompile(`(?m)^    \("(\w+)", "[^"]*", (True|False)\),$`).FindAllStringSubmatch(string(py), -1) {
		fromPy = append(fromPy, m[1])
	}
	assert.Equal(t, PartNames, fromPy, "verify.py's PARTS")

	sh, err := os.ReadFile(filepath.Join("..", "gpu-verify", "gpu-verify.sh"))
	require.NoError(t, err)
	var fromSh []string
	for _, m := range regexp.MustCompile(`(?m)^run_part (\w+) (\d+) part_(\w+)$`).FindAllStringSubmatch(string(sh), -1) {
		fromSh = append(fromSh, m[1])
		assert.Equal(t, m[1], m[3], "run_part %s calls part_%s", m[1], m[3])
		limit, _ := strconv.Atoi(m[2])
		assert.LessOrEqual(t, limit, MaxSeconds/2, "part %s's limit", m[1])
		assert.Regexp(t, `(?m)^#\s+`+m[1]+`\s+`+m[2]+`\s`, string(sh), "the header lists part %s with its limit %s", m[1], m[2])
	}
	assert.Equal(t, PartNames, fromSh, "gpu-verify.sh's run_part lines")
	b := regexp.MustCompile(`budget=\$\{GPU_VERIFY_BUDGET:-(\d+)\}`).FindStringSubmatch(string(sh))
	require.NotNil(t, b, "gpu-verify.sh sets a default budget")
	budget, _ := strconv.Atoi(b[1])
	// The report and the final bookkeeping take seconds; leave 20.
	assert.LessOrEqual(t, budget, MaxSeconds-20, "the default budget")
}
