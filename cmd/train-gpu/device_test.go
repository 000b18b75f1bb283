//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/internal/testassets"
)

// The hand-off of device.go: the CPU build (this test binary) gives a job
// that wants a GPU to the CUDA build only when that build's probe opens a
// GPU; this machine has none, so every path but the fake's success ends on
// the CPU (auto) or in a clean error (cuda).

func TestDeviceRequest(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run.toml")
	require.NoError(t, os.WriteFile(run, []byte("[model]\ndir = \"m\"\n[data]\ntrain = \"t.jsonl\"\n[device]\nkind = \"cuda\"\nordinal = 2\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want deviceReq
		ok   bool
	}{
		{[]string{"eval", "--adapter", "a", "--data", "d"}, deviceReq{"auto", 0}, true},
		{[]string{"eval", "--device", "cuda", "--gpu", "1"}, deviceReq{"cuda", 1}, true},
		{[]string{"predict", "-device=cpu", "-gpu=3"}, deviceReq{"cpu", 3}, true},
		{[]string{"bench", "--model", "m", "--device=cuda"}, deviceReq{"cuda", 0}, true},
		{[]string{"train", "-c", run}, deviceReq{"cuda", 2}, true},
		{[]string{"train", "-c", run, "--device", "auto"}, deviceReq{"auto", 2}, true},
		{[]string{"train", "--set", "device.kind=cpu", "-c=" + run}, deviceReq{"cpu", 2}, true},
		{[]string{"train", "-c", run, "--device", "cpu", "--set", "device.kind=cuda"}, deviceReq{"cpu", 2}, true}, // shortcuts after --set, as train applies them
		{[]string{"train", "-c", run, "--set", "device.ordinal=1"}, deviceReq{"cuda", 1}, true},
		// float64 accumulation is CPU-only: auto goes to the CPU without a
		// hand-off, cuda stays (the command then refuses it).
		{[]string{"bench", "--model", "m", "--accumulate", "float64"}, deviceReq{"cpu", 0}, true},
		{[]string{"bench", "--model", "m", "--device=cuda", "--accumulate=float64"}, deviceReq{"cuda", 0}, true},
		{[]string{"train", "-c", run, "--device", "auto", "--set", "device.accumulate=float64"}, deviceReq{"cpu", 2}, true},
		{[]string{"train", "-c", run, "--set", "device.accumulate=float64"}, deviceReq{}, false}, // cuda + float64: train reports it
		{[]string{"train"}, deviceReq{}, false},                                        // train reports the missing -c
		{[]string{"train", "-c", filepath.Join(dir, "nope.toml")}, deviceReq{}, false}, // and a bad run file
		{[]string{"eval", "--device", "tpu"}, deviceReq{}, false},
		{[]string{"eval", "--gpu", "x"}, deviceReq{}, false},
		{[]string{"eval", "--device"}, deviceReq{}, false},
		{[]string{"eval", "--help", "--device", "cuda"}, deviceReq{}, false},
		{[]string{"eval", "--", "--device", "cuda"}, deviceReq{"auto", 0}, true},
		{[]string{"params", "--device", "cuda"}, deviceReq{}, false},
		{[]string{"probe"}, deviceReq{}, false},
		{nil, deviceReq{}, false},
	} {
		got, ok := deviceRequest(tc.args)
		assert.Equal(t, tc.ok, ok, "%q", tc.args)
		assert.Equal(t, tc.want, got, "%q", tc.args)
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755))
	return path
}

// fakeCUDABuild writes a stand-in for train-gpu-cuda: its probe answers as
// a CUDA build on an "NVIDIA Fake" GPU; any other command prints its
// arguments and the loop guard, so a test sees what the hand-off started.
func fakeCUDABuild(t *testing.T, path string) string {
	return writeScript(t, path, `if [ "$1" = probe ]; then
  echo '{"ok":true,"info":{"ordinal":0,"name":"NVIDIA Fake","description":"cuda:0 NVIDIA Fake (sm_90, 1.0 GiB)","cc_major":9,"driver_version":13000}}'
  exit 0
fi
echo "fake CUDA build: $* (guard $TRAIN_GPU_DISPATCHED)"
`)
}

// testHandoff is a hand-off whose outside world is dir: self is dir's
// train-gpu, the environment is env, driver and library are present.
func testHandoff(dir string, env map[string]string) *handoff {
	h := newHandoff()
	h.self = filepath.Join(dir, "train-gpu")
	h.getenv = func(k string) string { return env[k] }
	h.environ = func() []string {
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
	h.driver = func() error { return nil }
	h.findLib = func(string) (string, bool) { return "/usr/lib/libcuda.so.1", true }
	h.exec = func(string, []string, []string) error { return errors.New("test: exec not expected") }
	h.probeTimeout = 10 * time.Second
	return h
}

func TestHandoffStages(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)

	// build: nothing next to the program, or a path that cannot run.
	r := testHandoff(dir, nil).check(0)
	assert.Equal(t, "build", r.Stage)
	assert.Contains(t, r.Reason, filepath.Join(dir, cudaBuildName)+" (next to "+filepath.Join(dir, "train-gpu")+") does not exist")
	assert.Contains(t, r.Reason, envCUDABuild)
	notExec := filepath.Join(dir, "not-exec")
	require.NoError(t, os.WriteFile(notExec, nil, 0o644))
	r = testHandoff(dir, map[string]string{envCUDABuild: notExec}).check(0)
	assert.Equal(t, "build", r.Stage)
	assert.Contains(t, r.Reason, "not an executable file")
	h := testHandoff(dir, map[string]string{envCUDABuild: self})
	h.self = self
	r = h.check(0)
	assert.Equal(t, "build", r.Stage)
	assert.Contains(t, r.Reason, "is this program")

	// guard: a CPU build started by a hand-off does not hand off again.
	fake := fakeCUDABuild(t, filepath.Join(dir, cudaBuildName))
	r = testHandoff(dir, map[string]string{envDispatched: "/x/train-gpu-cuda"}).check(0)
	assert.Equal(t, "guard", r.Stage)
	assert.Contains(t, r.Reason, envDispatched)

	// driver and library, and the variable that skips both.
	h = testHandoff(dir, nil)
	h.driver = func() error { return errors.New("the NVIDIA kernel driver is not loaded") }
	r = h.check(0)
	assert.Equal(t, "driver", r.Stage)
	assert.Contains(t, r.Reason, "not loaded")
	h.driver = func() error { return nil }
	h.findLib = func(string) (string, bool) { return "", false }
	r = h.check(0)
	assert.Equal(t, "library", r.Stage)
	assert.Contains(t, r.Reason, "libcuda.so.1")
	h = testHandoff(dir, map[string]string{envSkipDriver: "1"})
	h.driver = func() error { return errors.New("never asked") }
	h.findLib = func(string) (string, bool) { return "", false }
	r = h.check(0)
	require.True(t, r.ok(), "skipped driver checks: %+v", r)

	// probe: the fake answers; a failing, silent, slow or CPU build does not.
	r = testHandoff(dir, nil).check(0)
	require.True(t, r.ok(), "%+v", r)
	assert.Equal(t, fake, r.Path)
	assert.Equal(t, "cuda:0 NVIDIA Fake (sm_90, 1.0 GiB)", r.Info.Description)
	assert.Equal(t, "13.0", r.Info.Driver())
	for _, tc := range []struct{ body, want string }{
		{`echo 'Error in initialization, please refer to "x" for details on: NoDevice'; exit 1`, "its probe failed (exit status 1): Error in initialization"},
		{"exit 0", "without a probe answer"},
		{"sleep 5", "did not answer within 300ms"},
	} {
		p := writeScript(t, filepath.Join(dir, "bad-cuda"), tc.body)
		h := testHandoff(dir, map[string]string{envCUDABuild: p})
		h.probeTimeout = 300 * time.Millisecond
		r := h.check(0)
		assert.Equal(t, "probe", r.Stage, tc.body)
		assert.Contains(t, r.Reason, tc.want)
		assert.Contains(t, r.Reason, "cannot use GPU 0")
	}
	// This test binary run as main is a CPU build: its probe refuses.
	env := map[string]string{envCUDABuild: self, mainEnv: "1"}
	r = testHandoff(dir, env).check(0)
	assert.Equal(t, "probe", r.Stage)
	assert.Contains(t, r.Reason, "this is the CPU build (built without -tags cuda), not the CUDA build")
}

// The real CUDA build of make build / make cuda-check, on a machine without
// a GPU: libcuda.so.1 loads, cuInit fails, the probe says so.
func TestHandoffRealCUDABuild(t *testing.T) {
	real := testassets.Path("build", cudaBuildName)
	if _, err := os.Stat(real); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: CI builds it (make cuda-check) before the tests", real)
		}
		t.Skipf("SKIPPED: %s is not built (make build or make cuda-check, with the CUDA toolkit)", real)
	}
	r := testHandoff(t.TempDir(), map[string]string{envCUDABuild: real}).check(0)
	if r.ok() {
		t.Logf("a GPU answered: %+v", r.Info) // a GPU machine
		assert.NotEmpty(t, r.Info.Description)
		return
	}
	assert.Equal(t, "probe", r.Stage)
	assert.Contains(t, r.Reason, "Error in initialization", "the cuInit failure gorgonia.org/cu prints")
	t.Logf("real CUDA build without a GPU: %s", r.Reason)
}

func TestDispatch(t *testing.T) {
	dir := t.TempDir()
	run := writeRunFile(t, dir, filepath.Join(dir, "out"))
	fake := fakeCUDABuild(t, filepath.Join(dir, cudaBuildName))
	defer func() { lastCheck.set = false }()

	// cpu: no check at all.
	h := testHandoff(dir, nil)
	h.driver = func() error { t.Error("cpu ran the checks"); return nil }
	var stderr bytes.Buffer
	code, done := h.dispatch([]string{"train", "-c", run}, &stderr)
	assert.False(t, done)
	assert.Zero(t, code)

	// A working GPU: the CUDA build replaces this process, same arguments,
	// the guard in its environment.
	var gotPath string
	var gotArgv, gotEnv []string
	h = testHandoff(dir, nil)
	h.exec = func(path string, argv, env []string) error {
		gotPath, gotArgv, gotEnv = path, argv, env
		return errors.New("exec refused in the test")
	}
	args := []string{"train", "-c", run, "--device", "auto", "--max-steps", "3"}
	stderr.Reset()
	code, done = h.dispatch(args, &stderr)
	assert.Equal(t, fake, gotPath)
	assert.Equal(t, append([]string{fake}, args...), gotArgv)
	assert.Contains(t, gotEnv, envDispatched+"="+fake)
	assert.Contains(t, stderr.String(), "device auto: GPU 0 works (cuda:0 NVIDIA Fake (sm_90, 1.0 GiB), driver CUDA 13.0): running the CUDA build "+fake)
	// The exec failed: auto goes on (on the CPU, saying why), cuda stops.
	assert.False(t, done)
	assert.Zero(t, code)
	assert.Contains(t, cpuReason(0), "exec refused in the test")
	code, done = h.dispatch([]string{"eval", "--device", "cuda", "--data", "d"}, &stderr)
	assert.True(t, done)
	assert.Equal(t, 1, code)

	// No usable GPU: cuda fails before any work, auto leaves it to openDevice.
	h = testHandoff(dir, nil)
	h.driver = func() error { return errors.New("the NVIDIA kernel driver is not loaded") }
	stderr.Reset()
	code, done = h.dispatch([]string{"predict", "--device", "cuda", "--gpu", "1"}, &stderr)
	assert.True(t, done)
	assert.Equal(t, 1, code)
	assert.Equal(t, "train-gpu predict: device cuda: no usable GPU 1: the NVIDIA kernel driver is not loaded (TRAIN_GPU_SKIP_DRIVER_CHECK=1 skips this check) (stage driver)\n", stderr.String())
	code, done = h.dispatch([]string{"bench", "--model", "m"}, &stderr)
	assert.False(t, done)
	assert.Zero(t, code)
	var log bytes.Buffer
	be, err := openDevice("auto", 0, &log)
	require.NoError(t, err)
	assert.Equal(t, "cpu", be.Name())
	assert.Equal(t, "device auto: using the CPU: the NVIDIA kernel driver is not loaded (TRAIN_GPU_SKIP_DRIVER_CHECK=1 skips this check) (stage driver)\n", log.String())
	_, err = openDevice("cuda", 0, &log)
	assert.ErrorContains(t, err, "device cuda: no usable GPU 0: the NVIDIA kernel driver is not loaded")
}

// TestOneProgram runs the program (this test binary as train-gpu's main, a
// CPU build) as users do, in each situation this machine can set up: the
// job trains on the CPU under --device auto and says why, fails cleanly
// under --device cuda, and is handed to a CUDA build whose probe answers.
func TestOneProgram(t *testing.T) {
	dir := t.TempDir()
	writeTinyModel(t, dir)
	fake := fakeCUDABuild(t, filepath.Join(dir, "fake-cuda"))
	failing := writeScript(t, filepath.Join(dir, "failing-cuda"), "echo 'Error in initialization: NoDevice'; exit 1\n")
	type want struct {
		code           int
		stdout, stderr []string
		trained        bool
	}
	cases := []struct {
		name string
		env  []string
		dev  string
		want want
	}{
		{"no CUDA build, auto", []string{envCUDABuild + "=" + filepath.Join(dir, "none")}, "auto",
			want{0, []string{"trained 12 steps"}, []string{"device auto: using the CPU: no CUDA build: " + filepath.Join(dir, "none") + " (from TRAIN_GPU_CUDA) does not exist", "(stage build)"}, true}},
		{"no CUDA build, cuda", []string{envCUDABuild + "=" + filepath.Join(dir, "none")}, "cuda",
			want{1, nil, []string{"train-gpu train: device cuda: no usable GPU 0: no CUDA build: "}, false}},
		{"CUDA build, no driver", []string{envCUDABuild + "=" + fake}, "auto",
			want{0, []string{"trained 12 steps"}, []string{"device auto: using the CPU: ", "(stage driver)"}, true}},
		{"probe fails, auto", []string{envCUDABuild + "=" + failing, envSkipDriver + "=1"}, "auto",
			want{0, []string{"trained 12 steps"}, []string{"its probe failed (exit status 1): Error in initialization: NoDevice (stage probe)"}, true}},
		{"probe fails, cuda", []string{envCUDABuild + "=" + failing, envSkipDriver + "=1"}, "cuda",
			want{1, nil, []string{"device cuda: no usable GPU 0: the CUDA build " + failing + " cannot use GPU 0"}, false}},
		{"probe answers", []string{envCUDABuild + "=" + fake, envSkipDriver + "=1"}, "auto",
			want{0, []string{"fake CUDA build: train -c ", " --device auto (guard " + fake + ")"}, []string{"device auto: GPU 0 works (cuda:0 NVIDIA Fake"}, false}},
	}
	if real := testassets.Path("build", cudaBuildName); fileExists(real) {
		env := []string{envCUDABuild + "=" + real, envSkipDriver + "=1"}
		cases = append(cases,
			struct {
				name string
				env  []string
				dev  string
				want want
			}{"real CUDA build, auto", env, "auto", want{0, []string{"trained 12 steps"}, []string{"device auto: using the CPU: the CUDA build " + real + " cannot use GPU 0: its probe failed (exit status 1): Error in initialization"}, true}},
			struct {
				name string
				env  []string
				dev  string
				want want
			}{"real CUDA build, cuda", env, "cuda", want{1, nil, []string{"device cuda: no usable GPU 0: the CUDA build " + real + " cannot use GPU 0", "NoDevice"}, false}})
	} else {
		t.Logf("build/%s is not built: its cases are left out (TestHandoffRealCUDABuild says so loudly)", cudaBuildName)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "CUDA build, no driver" && nvidiaDriver() == nil {
				t.Skip("this machine has the NVIDIA driver")
			}
			out := filepath.Join(t.TempDir(), "run")
			cmd := trainGPU(t, "train", "-c", writeRunFile(t, dir, out), "--device", tc.dev)
			cmd.Env = append(cmd.Env, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if err != nil {
				code = cmd.ProcessState.ExitCode()
			}
			assert.Equal(t, tc.want.code, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, s := range tc.want.stdout {
				assert.Contains(t, stdout.String(), s)
			}
			for _, s := range tc.want.stderr {
				assert.Contains(t, stderr.String(), s)
			}
			if tc.want.trained {
				assert.FileExists(t, filepath.Join(out, "adapter.safetensors"))
			} else {
				assert.NoFileExists(t, filepath.Join(out, "adapter.safetensors"))
			}
			if !gpu.CUDABuild && strings.Contains(tc.name, "cuda") {
				assert.NotContains(t, stdout.String(), "trained", "a failed --device cuda must not train")
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
