package serve_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/internal/tinybert"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/safetensors"
	"github.com/houlsby/adapters/serve"
)

// runWatcher runs a's watcher (fsnotify) until the test ends.
func (a *api) runWatcher(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.NoError(t, a.w.Run(ctx))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// labelsOf answers one predict request and returns its labels.
func (a *api) labelsOf(t *testing.T, task string) (int, []string) {
	t.Helper()
	code, body, _ := a.do(t, "POST", "/v1/predict", `{"task": "`+task+`", "inputs": ["good", "a bad film"]}`)
	if code != 200 {
		return code, nil
	}
	var pr predictResp
	require.NoError(t, json.Unmarshal(body, &pr))
	var out []string
	for _, p := range pr.Predictions {
		for l := range p.Probabilities {
			out = append(out, l)
		}
	}
	return code, out
}

// TestWatchAddReplaceRemove: files that appear, change and go away in the
// folder are picked up without a restart (fsnotify), and a removed task
// finishes the requests it had accepted.
func TestWatchAddReplaceRemove(t *testing.T) {
	// Batches wait 400 ms to fill: a request stays queued while its task's
	// file is removed.
	a := newAPI(t, serve.Options{MaxWait: 400 * time.Millisecond, MaxBatchRows: 64, MaxBatchTokens: 64 * 16}, serve.ServerOptions{})
	a.runWatcher(t)
	keep := a.tb.file(t, taskKinds["adapters"], []string{"neg", "pos"}, 1)
	save(t, a.dir, "keep", keep)
	save(t, a.dir, "x", a.tb.file(t, taskKinds["layernorm"], []string{"a", "b"}, 2))
	require.Eventually(t, func() bool { return len(a.p.Tasks()) == 2 }, 10*time.Second, 10*time.Millisecond, "hot add")
	code, labels := a.labelsOf(t, "x")
	require.Equal(t, 200, code)
	assert.Subset(t, []string{"a", "b"}, labels)

	// Replace x with a file of other labels (and another strategy).
	save(t, a.dir, "x", a.tb.file(t, taskKinds["bitfit"], []string{"p", "q", "r"}, 3))
	require.Eventually(t, func() bool {
		info, ok := a.p.Task("x")
		return ok && info.Strategy == "bitfit"
	}, 10*time.Second, 10*time.Millisecond, "hot replace")
	code, labels = a.labelsOf(t, "x")
	require.Equal(t, 200, code)
	assert.Subset(t, []string{"p", "q", "r"}, labels)
	info, _ := a.p.Task("x")
	assert.False(t, info.SharesBackbone)

	// Remove x while a request for it is queued: that request still gets
	// its answer; the task is gone for new ones.
	answered := make(chan int, 1)
	go func() {
		code, _ := a.labelsOf(t, "x")
		answered <- code
	}()
	require.Eventually(t, func() bool { return a.p.QueueLen() == 2 }, 5*time.Second, time.Millisecond)
	mustRemove(t, filepath.Join(a.dir, "x.safetensors"))
	require.Eventually(t, func() bool { _, ok := a.p.Task("x"); return !ok }, 10*time.Second, 5*time.Millisecond, "hot remove")
	assert.Equal(t, 200, <-answered, "the queued request drained")
	code, _ = a.labelsOf(t, "x")
	assert.Equal(t, 404, code)
	code, _ = a.labelsOf(t, "keep")
	assert.Equal(t, 200, code, "the other task kept serving")
}

// badFiles writes adapter files that must be refused: truncated, made for
// another base model, of a newer format version.
func badFiles(t *testing.T, a *api) map[string]string {
	good := a.tb.file(t, taskKinds["adapters"], []string{"neg", "pos"}, 5)
	tmp := save(t, t.TempDir(), "tmp", good)
	raw, err := os.ReadFile(tmp)
	require.NoError(t, err)
	want := map[string]string{}

	require.NoError(t, os.WriteFile(filepath.Join(a.dir, "truncated.safetensors"), raw[:len(raw)*2/3], 0o644))
	want["truncated"] = "truncated.safetensors"

	other := t.TempDir()
	spec := tinybert.Sentiment
	spec.Seed = [2]uint64{8, 9}
	_, err = tinybert.Create(other, spec)
	require.NoError(t, err)
	ock, err := model.LoadCheckpoint(other)
	require.NoError(t, err)
	of := *good
	of.BaseFingerprint = ock.Fingerprint
	save(t, a.dir, "otherbase", &of)
	want["otherbase"] = "base model"

	meta, err := good.Metadata()
	require.NoError(t, err)
	meta["format_version"] = "99"
	var ts []safetensors.NamedTensor
	for _, x := range good.Tensors {
		ts = append(ts, safetensors.F32Tensor(x.Name, x.Shape, x.Data))
	}
	require.NoError(t, safetensors.Write(filepath.Join(a.dir, "future.safetensors"), ts, meta))
	want["future"] = "format version 99"
	return want
}

// TestWatchRefusesBadFiles: invalid files are logged and refused, every
// other task keeps serving, and a bad replacement leaves the previous
// version serving.
func TestWatchRefusesBadFiles(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{})
	save(t, a.dir, "ok", a.tb.file(t, taskKinds["head"], []string{"neg", "pos"}, 1))
	save(t, a.dir, "future", a.tb.file(t, taskKinds["head"], []string{"old1", "old2"}, 2))
	rep := a.w.Sync()
	require.ElementsMatch(t, []string{"ok", "future"}, rep.Added)

	want := badFiles(t, a) // overwrites future with a bad version
	rep = a.w.Sync()
	require.Len(t, rep.Refused, 3, "%+v", rep)
	for name, msg := range want {
		assert.Contains(t, rep.Refused[name], msg, name)
	}
	code, _ := a.labelsOf(t, "ok")
	assert.Equal(t, 200, code)
	code, labels := a.labelsOf(t, "future")
	assert.Equal(t, 200, code, "the previous version keeps serving")
	assert.Subset(t, []string{"old1", "old2"}, labels)
	for _, name := range []string{"truncated", "otherbase"} {
		code, _ = a.labelsOf(t, name)
		assert.Equal(t, 404, code, name)
	}
	code, body, _ := a.do(t, "GET", "/v1/tasks", "")
	require.Equal(t, 200, code)
	var tasks struct {
		Refused map[string]string `json:"refused"`
	}
	require.NoError(t, json.Unmarshal(body, &tasks))
	assert.Len(t, tasks.Refused, 3)
	// A second sync does not retry unchanged bad files.
	assert.Empty(t, a.w.Sync().Refused)
	assert.Len(t, a.w.Refused(), 3)
}

// TestWatchNeverServesHalfWritten: a file copied in place in slow pieces
// (as cp does) is read only when complete; meanwhile the previous version
// answers, and no answer comes from a half-written file.
func TestWatchNeverServesHalfWritten(t *testing.T) {
	a := newAPI(t, serve.Options{}, serve.ServerOptions{})
	a.w.Settle = 150 * time.Millisecond
	a.runWatcher(t)
	save(t, a.dir, "t", a.tb.file(t, taskKinds["adapters"], []string{"old1", "old2"}, 1))
	require.Eventually(t, func() bool { _, ok := a.p.Task("t"); return ok }, 10*time.Second, 10*time.Millisecond)

	next := save(t, t.TempDir(), "next", a.tb.file(t, taskKinds["adapters"], []string{"new1", "new2"}, 2))
	raw, err := os.ReadFile(next)
	require.NoError(t, err)
	var bad atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, labels := a.labelsOf(t, "t")
			ok := code == 200 && len(labels) == 4 &&
				(strings.HasPrefix(labels[0], "old") && strings.HasPrefix(labels[3], "old") ||
					strings.HasPrefix(labels[0], "new") && strings.HasPrefix(labels[3], "new"))
			if !ok {
				bad.Add(1)
			}
		}
	}()
	f, err := os.OpenFile(filepath.Join(a.dir, "t.safetensors"), os.O_WRONLY|os.O_TRUNC, 0o644)
	require.NoError(t, err)
	chunk := len(raw)/5 + 1
	for i := 0; i < len(raw); i += chunk {
		_, err := f.Write(raw[i:min(i+chunk, len(raw))])
		require.NoError(t, err)
		time.Sleep(40 * time.Millisecond) // quieter than Settle: no read in between
	}
	require.NoError(t, f.Close())
	require.Eventually(t, func() bool {
		_, labels := a.labelsOf(t, "t")
		return len(labels) > 0 && strings.HasPrefix(labels[0], "new")
	}, 10*time.Second, 10*time.Millisecond)
	close(stop)
	wg.Wait()
	assert.Zero(t, bad.Load(), "answers from neither the old nor the complete new file")
	assert.Empty(t, a.w.Refused())
}
