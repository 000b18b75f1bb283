//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveFixture trains a tiny adapter and returns the model folder and an
// adapters folder holding it as task "sent".
func serveFixture(t *testing.T) (modelDir, adapters string) {
	t.Helper()
	dir := t.TempDir()
	writeTinyModel(t, dir)
	out := filepath.Join(dir, "run")
	code, _, stderr := runCLI("train", "-c", writeRunFile(t, dir, out), "--epochs", "1")
	require.Equal(t, 0, code, stderr)
	adapters = filepath.Join(dir, "adapters")
	require.NoError(t, os.Mkdir(adapters, 0o755))
	copyFile(t, filepath.Join(out, "adapter.safetensors"), filepath.Join(adapters, "sent.safetensors"))
	return dir, adapters
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

// startServe runs `train-gpu serve` as a subprocess on a free loopback port
// and returns it with its base URL once it is ready.
func startServe(t *testing.T, args ...string) (*procOut, string) {
	t.Helper()
	cmd := trainGPU(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--device", "cpu", "--max-length", "16"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &procOut{cmd: cmd, lines: make(chan string, 1000), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addr := regexp.MustCompile(`msg=serving addr=(\S+)`)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			require.True(t, ok, "serve exited before listening: %s", p.log())
			p.all = append(p.all, l)
			if m := addr.FindStringSubmatch(l); m != nil {
				return p, "http://" + m[1]
			}
		case <-deadline:
			t.Fatalf("serve did not start: %s", p.log())
		}
	}
}

type procOut struct {
	cmd    *exec.Cmd
	lines  chan string
	all    []string
	exited chan error
}

func (p *procOut) log() string { return strings.Join(p.all, "\n") }

// wait collects the rest of the log and the exit status.
func (p *procOut) wait(t *testing.T) error {
	t.Helper()
	for l := range p.lines {
		p.all = append(p.all, l)
	}
	select {
	case err := <-p.exited:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not exit")
		return nil
	}
}

func post(ctx context.Context, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestServeSIGTERM: SIGTERM stops accepting, turns /readyz to 503, finishes
// the requests in flight and exits 0.
func TestServeSIGTERM(t *testing.T) {
	model, adapters := serveFixture(t)
	// Batches wait 1.5 s to fill, so a request is in flight when SIGTERM comes.
	p, url := startServe(t, "--model", model, "--adapters", adapters, "--max-wait", "1500ms", "--max-batch-rows", "64",
		"--max-batch-tokens", "2048", "--shutdown-delay", "300ms")
	type result struct {
		code int
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		c, b, err := post(context.Background(), url+"/v1/predict", `{"task": "sent", "inputs": ["the movie was very good"]}`)
		inflight <- result{c, b, err}
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "houlsby_serve_queue_rows 1")
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM))
	// During the shutdown delay the listener is open but not ready.
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	}, 5*time.Second, 5*time.Millisecond)
	r := <-inflight
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.code, r.body)
	require.NoError(t, p.wait(t), "exit status; log:\n%s", p.log())
	assert.Contains(t, p.log(), "stopped")
	_, err := http.Get(url + "/healthz")
	assert.Error(t, err, "nothing listens after exit")
}

// TestServeSIGHUPAndTOML: settings from a [serve] TOML section, flags over
// them; a file added to the folder is served after SIGHUP (and by fsnotify).
func TestServeSIGHUPAndTOML(t *testing.T) {
	model, adapters := serveFixture(t)
	conf := filepath.Join(t.TempDir(), "serve.toml")
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok\n"), 0o600))
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("[serve]\nmodel = %q\nadapters = %q\nmax_inputs = 2\nmax_wait = \"1ms\"\ntoken_file = %q\n",
		model, adapters, tokenFile)), 0o644))
	p, url := startServe(t, "-c", conf, "--max-inputs", "3")
	auth := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", url+"/v1/predict", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := auth(`{"task": "sent", "inputs": ["good", "bad", "great"]}`)
	assert.Equal(t, 200, code, body) // --max-inputs 3 over the file's 2
	code, _ = auth(`{"task": "sent", "inputs": ["good", "bad", "great", "awful"]}`)
	assert.Equal(t, 400, code)
	code, _, _ = post(context.Background(), url+"/v1/predict", `{"task": "sent", "inputs": ["good"]}`)
	assert.Equal(t, 401, code, "token_file from the TOML")

	copyFile(t, filepath.Join(adapters, "sent.safetensors"), filepath.Join(adapters, "two.safetensors"))
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP))
	require.Eventually(t, func() bool {
		code, _ := auth(`{"task": "two", "inputs": ["good"]}`)
		return code == 200
	}, 20*time.Second, 20*time.Millisecond)
	req, _ := http.NewRequest("GET", url+"/v1/tasks", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var tasks struct {
		Tasks []struct {
			Name    string                        `json:"name"`
			Metrics map[string]map[string]float64 `json:"metrics"`
		} `json:"tasks"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tasks))
	resp.Body.Close()
	require.Len(t, tasks.Tasks, 2)
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM))
	require.NoError(t, p.wait(t), p.log())
}

func TestServeFlagErrors(t *testing.T) {
	code, _, _ := runCLI("serve")
	assert.Equal(t, 2, code)
	code, _, stderr := runCLI("serve", "--model", "x", "--adapters", "y", "--max-queue", "0")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--max-queue")
	bad := filepath.Join(t.TempDir(), "s.toml")
	require.NoError(t, os.WriteFile(bad, []byte("[serve]\nmodel = \"m\"\nadapters = \"a\"\nmax_batch = 3\n"), 0o644))
	code, _, stderr = runCLI("serve", "-c", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "unknown key serve.max_batch")
}

// TestLoadgenWithChurn: loadgen's mixed traffic over two tasks while it
// replaces, adds and removes files in the served folder ends without an
// error or a dropped request, and reports what it measured.
func TestLoadgenWithChurn(t *testing.T) {
	model, adapters := serveFixture(t)
	copyFile(t, filepath.Join(adapters, "sent.safetensors"), filepath.Join(adapters, "other.safetensors"))
	p, url := startServe(t, "--model", model, "--adapters", adapters, "--max-wait", "2ms")
	data := filepath.Join(model, "val.jsonl")
	out := filepath.Join(t.TempDir(), "load.json")
	code, stdout, stderr := runCLI("loadgen", "--url", url, "--data", data, "--clients", "4", "--duration", "2s", "--inputs", "2",
		"--churn-dir", adapters, "--churn-every", "150ms", "--json", out)
	require.Equal(t, 0, code, "%s\n%s\nserver log:\n%s", stdout, stderr, p.log())
	assert.Contains(t, stdout, "errors: none")
	var rep loadReport
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Positive(t, rep.OK)
	assert.Equal(t, rep.Sent, rep.OK)
	assert.Zero(t, rep.Dropped)
	assert.Positive(t, rep.Churn["replaced"])
	assert.Positive(t, rep.Churn["added"])
	assert.ElementsMatch(t, []string{"other", "sent"}, rep.Tasks)
	assert.Contains(t, rep.LatencyMs, "p99")

	code, _, stderr = runCLI("loadgen", "--url", "http://10.0.0.1:8080", "--data", data)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "loopback")
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM))
	require.NoError(t, p.wait(t), p.log())
}
