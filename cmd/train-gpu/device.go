package main

// Device selection, and the hand-off that makes one program run everywhere.
//
// A cuda-tagged binary cannot start without the NVIDIA driver: it needs
// libcuda.so.1 to load, and gorgonia.org/cu calls cuInit in its package
// init and exits when that fails, before main runs. So the program users
// run, `train-gpu`, is the CPU build, and it hands jobs that want a GPU to
// the CUDA build, `train-gpu-cuda`, only once that build has shown it can
// start and open the GPU:
//
//  1. run (main.go) asks deviceRequest which device the command wants
//     (--device, --gpu, and for train the run file's [device] section);
//  2. for auto or cuda, handoff.check walks the stages, each a precise
//     reason to stay on the CPU when it fails:
//     guard    TRAIN_GPU_DISPATCHED is unset (this process was not itself
//     started by a hand-off: no loops);
//     build    the CUDA build exists: $TRAIN_GPU_CUDA, else train-gpu-cuda
//     next to this program (symlinks resolved);
//     driver   the NVIDIA kernel driver is loaded (/proc/driver/nvidia/version)
//     and a GPU device node exists (/dev/nvidia0, …), or WSL2's /dev/dxg
//     (/dev/nvidiactl alone proves nothing: libcuda creates it when run as
//     root, driver or not);
//     library  libcuda.so.1 is in LD_LIBRARY_PATH, the folders of
//     /etc/ld.so.conf or the system library folders;
//     probe    `train-gpu-cuda probe --child --gpu N` (a child process, with
//     the guard set, stdin closed, at most probeTimeout) opens the
//     GPU and answers with its description;
//     (TRAIN_GPU_SKIP_DRIVER_CHECK=1 skips driver and library, for driver
//     installs the two heuristics miss: the probe still decides);
//  3. on success the CPU build says so on stderr and replaces itself
//     (execve) with the CUDA build, same arguments, same standard streams,
//     TRAIN_GPU_DISPATCHED set; otherwise auto continues on the CPU and
//     says why, and cuda fails with the reason before any work.
//
// The CUDA build does none of this: it is what the hand-off runs, and on a
// GPU machine it may also be run directly.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/houlsby/adapters/backend"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/gpu"
	"github.com/houlsby/adapters/trainer"
)

// The hand-off's environment variables and file name.
const (
	envCUDABuild  = "TRAIN_GPU_CUDA"              // path of the CUDA build
	envDispatched = "TRAIN_GPU_DISPATCHED"        // set by the hand-off in the CUDA build's environment: the loop guard
	envSkipDriver = "TRAIN_GPU_SKIP_DRIVER_CHECK" // "1": skip the driver and library stages
	cudaBuildName = "train-gpu-cuda"
)

// openDevice selects the backend for device.kind: cpu, cuda (an error
// without a usable GPU), or auto (the GPU when it opens, else the CPU,
// saying why on log).
func openDevice(kind string, ordinal int, log io.Writer) (backend.Backend, error) {
	return openDeviceAcc(kind, ordinal, trainer.AccumulateF32, log)
}

// openDeviceAcc is openDevice with device.accumulate: float64 accumulation
// exists on the CPU backend only, so it opens the CPU for auto (saying so)
// and refuses cuda.
func openDeviceAcc(kind string, ordinal int, accumulate string, log io.Writer) (backend.Backend, error) {
	switch accumulate {
	case trainer.AccumulateF32, "":
	case trainer.AccumulateF64:
		switch kind {
		case "cpu":
		case "auto", "":
			fmt.Fprintln(log, "device auto: using the CPU: float64 accumulation (device.accumulate = \"float64\") is CPU-only")
		case "cuda":
			return nil, fmt.Errorf("device cuda: float64 accumulation (device.accumulate = \"float64\") is CPU-only; the CUDA kernels sum in float32")
		default:
			return nil, fmt.Errorf("device %q: want auto, cpu or cuda", kind)
		}
		return cpu.NewWithOptions(cpu.Options{AccumulateF64: true}), nil
	default:
		return nil, fmt.Errorf("accumulate %q: want float32 or float64", accumulate)
	}
	switch kind {
	case "cpu":
		return cpu.New(), nil
	case "cuda", "auto", "":
	default:
		return nil, fmt.Errorf("device %q: want auto, cpu or cuda", kind)
	}
	if kind == "" {
		kind = "auto"
	}
	be, err := gpu.Open(ordinal)
	if err == nil {
		return be, nil
	}
	why := err.Error()
	if !gpu.CUDABuild {
		// The CPU build reaches here when the hand-off did not happen:
		// report why (the check run already ran it, or run it now).
		why = cpuReason(ordinal)
	}
	if kind == "cuda" {
		return nil, fmt.Errorf("device cuda: no usable GPU %d: %s", ordinal, why)
	}
	fmt.Fprintf(log, "device auto: using the CPU: %s\n", why)
	return cpu.New(), nil
}

// deviceReq is the device a command line asks for.
type deviceReq struct {
	kind    string // auto, cpu or cuda
	ordinal int
}

// deviceRequest returns the device the command of args (train, eval,
// predict, bench) will open, read the way the command reads it: --device
// and --gpu, and for train the run file's [device] section with --set and
// --device applied. It answers false for other commands, --help, and
// arguments the command itself will reject (the command then reports them).
func deviceRequest(args []string) (deviceReq, bool) {
	if len(args) == 0 {
		return deviceReq{}, false
	}
	cmd := args[0]
	switch cmd {
	case "train", "eval", "predict", "bench":
	default:
		return deviceReq{}, false
	}
	valued := map[string]bool{"device": true, "gpu": true, "c": true, "set": true, "accumulate": true}
	var device, gpuFlag, cfgPath, accumulate string
	var sets []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		switch name {
		case "h", "help":
			return deviceReq{}, false
		}
		if !valued[name] {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return deviceReq{}, false
			}
			i++
			val = args[i]
		}
		switch name {
		case "device":
			device = val
		case "gpu":
			gpuFlag = val
		case "c":
			cfgPath = val
		case "set":
			sets = append(sets, val)
		case "accumulate":
			accumulate = val
		}
	}
	req := deviceReq{kind: "auto"}
	if cmd == "train" {
		if cfgPath == "" {
			return deviceReq{}, false
		}
		if device != "" {
			sets = append(sets, "device.kind="+device)
		}
		cfg, err := trainer.LoadConfig(cfgPath, sets)
		if err != nil {
			return deviceReq{}, false
		}
		kind := cfg.Device.Kind
		if cfg.Device.Accumulate == trainer.AccumulateF64 && kind == "auto" {
			kind = "cpu" // float64 accumulation is CPU-only: no hand-off
		}
		return deviceReq{kind: kind, ordinal: cfg.Device.Ordinal}, true
	}
	if device != "" {
		req.kind = device
	}
	if accumulate == trainer.AccumulateF64 && req.kind == "auto" {
		req.kind = "cpu"
	}
	if gpuFlag != "" {
		n, err := strconv.Atoi(gpuFlag)
		if err != nil || n < 0 {
			return deviceReq{}, false
		}
		req.ordinal = n
	}
	switch req.kind {
	case "auto", "cpu", "cuda":
		return req, true
	}
	return deviceReq{}, false
}

// handoff finds, checks and starts the CUDA build. Its fields are the
// outside world, replaced in tests.
type handoff struct {
	self         string                           // this program's path
	getenv       func(string) string              // os.Getenv
	environ      func() []string                  // os.Environ
	driver       func() error                     // nil when the NVIDIA kernel driver and a GPU node are present
	findLib      func(name string) (string, bool) // where a shared library would load from
	probe        func(path string, ordinal int, env []string, timeout time.Duration) (gpu.DeviceInfo, error)
	exec         func(path string, argv, env []string) error // replaces the process; returns only on failure
	probeTimeout time.Duration
}

// handoffResult is what check found: the CUDA build's description of the
// GPU, or the stage that failed and why.
type handoffResult struct {
	Stage  string // "" on success, else guard, build, driver, library or probe
	Reason string
	Path   string // the CUDA build
	Info   gpu.DeviceInfo
}

func (r handoffResult) ok() bool { return r.Stage == "" }

// probeTimeout bounds the probe: creating a context and JIT-compiling the
// PTX for a new GPU takes seconds; a minute means something is wrong.
const probeTimeout = 60 * time.Second

// newHandoff is the hand-off of this process.
func newHandoff() *handoff {
	self, err := os.Executable()
	if err == nil {
		if p, err := filepath.EvalSymlinks(self); err == nil {
			self = p
		}
	}
	return &handoff{self: self, getenv: os.Getenv, environ: os.Environ, driver: nvidiaDriver,
		findLib: findSharedLib, probe: probeChild, exec: execProgram, probeTimeout: probeTimeout}
}

// cudaBuild returns the CUDA build's path and whether it came from the
// environment.
func (h *handoff) cudaBuild() (string, bool) {
	if p := h.getenv(envCUDABuild); p != "" {
		return p, true
	}
	return filepath.Join(filepath.Dir(h.self), cudaBuildName), false
}

// check runs the stages in order and stops at the first that fails.
func (h *handoff) check(ordinal int) handoffResult {
	path, fromEnv := h.cudaBuild()
	r := handoffResult{Path: path}
	fail := func(stage, format string, args ...any) handoffResult {
		r.Stage, r.Reason = stage, fmt.Sprintf(format, args...)
		return r
	}
	if g := h.getenv(envDispatched); g != "" {
		return fail("guard", "this CPU build was itself started by a hand-off to %s (%s is set), so %s is not the CUDA build; not handing off again", g, envDispatched, g)
	}
	where := "next to " + h.self
	if fromEnv {
		where = "from " + envCUDABuild
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fail("build", "no CUDA build: %s (%s) does not exist; `make build` builds build/train-gpu-cuda next to build/train-gpu where the CUDA toolkit is installed, and %s names another path", path, where, envCUDABuild)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		return fail("build", "the CUDA build %s (%s) is not an executable file", path, where)
	}
	if me, err := os.Stat(h.self); err == nil && os.SameFile(me, st) {
		return fail("build", "the CUDA build %s (%s) is this program, a CPU build", path, where)
	}
	if h.getenv(envSkipDriver) != "1" {
		if err := h.driver(); err != nil {
			return fail("driver", "%v (%s=1 skips this check)", err, envSkipDriver)
		}
		if _, ok := h.findLib("libcuda.so.1"); !ok {
			return fail("library", "libcuda.so.1, the NVIDIA driver's library, is in none of LD_LIBRARY_PATH, the folders of /etc/ld.so.conf and the system library folders (%s=1 skips this check)", envSkipDriver)
		}
	}
	env := append(h.environ(), envDispatched+"="+path)
	info, err := h.probe(path, ordinal, env, h.probeTimeout)
	if err != nil {
		return fail("probe", "the CUDA build %s cannot use GPU %d: %v", path, ordinal, err)
	}
	r.Info = info
	return r
}

// lastCheck is the hand-off check of this process's command (set by
// dispatch), so openDevice reports the reason without probing again.
var lastCheck struct {
	set     bool
	ordinal int
	res     handoffResult
}

// cpuReason says why this CPU build runs on the CPU for GPU ordinal.
func cpuReason(ordinal int) string {
	r := lastCheck.res
	if !lastCheck.set || lastCheck.ordinal != ordinal {
		r = newHandoff().check(ordinal)
	}
	if r.ok() {
		return fmt.Sprintf("GPU %d works through %s, but this process was not handed to it (run the train-gpu program rather than calling its code)", ordinal, r.Path)
	}
	return fmt.Sprintf("%s (stage %s)", r.Reason, r.Stage)
}

// dispatch hands the command in args to the CUDA build when it asks for a
// GPU and one works. It returns done with the exit code when the command
// must not run here: the exec failed for --device cuda, or cuda has no GPU.
// A successful hand-off does not return.
func (h *handoff) dispatch(args []string, stderr io.Writer) (code int, done bool) {
	req, ok := deviceRequest(args)
	if !ok || req.kind == "cpu" || gpu.CUDABuild {
		return 0, false
	}
	res := h.check(req.ordinal)
	lastCheck.set, lastCheck.ordinal, lastCheck.res = true, req.ordinal, res
	if !res.ok() {
		if req.kind == "cuda" {
			fmt.Fprintf(stderr, "train-gpu %s: device cuda: no usable GPU %d: %s (stage %s)\n", args[0], req.ordinal, res.Reason, res.Stage)
			return 1, true
		}
		return 0, false // openDevice says why it uses the CPU
	}
	fmt.Fprintf(stderr, "device %s: GPU %d works (%s, driver CUDA %s): running the CUDA build %s\n",
		req.kind, req.ordinal, res.Info.Description, res.Info.Driver(), res.Path)
	env := append(h.environ(), envDispatched+"="+res.Path)
	err := h.exec(res.Path, append([]string{res.Path}, args...), env)
	// Only a failed exec returns.
	lastCheck.res = handoffResult{Stage: "exec", Reason: fmt.Sprintf("starting the CUDA build %s failed: %v", res.Path, err), Path: res.Path}
	if req.kind == "cuda" {
		fmt.Fprintf(stderr, "train-gpu %s: device cuda: %s\n", args[0], lastCheck.res.Reason)
		return 1, true
	}
	return 0, false
}

// probeReply is the one JSON line `probe --child` prints on success.
type probeReply struct {
	OK   bool           `json:"ok"`
	Info gpu.DeviceInfo `json:"info"`
}

// probeChild runs `path probe --child --gpu ordinal` and returns the GPU it
// describes; a failure quotes the child's output (gorgonia.org/cu prints
// its cuInit error on stdout).
func probeChild(path string, ordinal int, env []string, timeout time.Duration) (gpu.DeviceInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "probe", "--child", "--gpu", strconv.Itoa(ordinal))
	cmd.Env = env
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return gpu.DeviceInfo{}, fmt.Errorf("its probe did not answer within %v", timeout)
	}
	out := strings.TrimSpace(stdout.String() + "\n" + stderr.String())
	if err != nil {
		return gpu.DeviceInfo{}, fmt.Errorf("its probe failed (%v): %s", err, lastLines(out, 6, 800))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var reply probeReply
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &reply); jerr != nil || !reply.OK {
		return gpu.DeviceInfo{}, fmt.Errorf("its probe exited 0 without a probe answer: %s", lastLines(out, 6, 800))
	}
	return reply.Info, nil
}

// lastLines returns the last n lines of s, at most max bytes, on one line.
func lastLines(s string, n, max int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > max {
		out = "..." + out[len(out)-max:]
	}
	if out == "" {
		out = "(no output)"
	}
	return out
}

// nvidiaDriver returns nil when the NVIDIA kernel driver is loaded and a
// GPU device node is present (or under WSL2, whose GPU is /dev/dxg), and
// otherwise says which is missing.
func nvidiaDriver() error {
	if _, err := os.Stat("/dev/dxg"); err == nil {
		return nil
	}
	if _, err := os.Stat("/proc/driver/nvidia/version"); err != nil {
		return errors.New("the NVIDIA kernel driver is not loaded (no /proc/driver/nvidia/version)")
	}
	if m, _ := filepath.Glob("/dev/nvidia[0-9]*"); len(m) == 0 {
		return errors.New("the NVIDIA kernel driver is loaded but there is no GPU device node (/dev/nvidia0, ...): no GPU is passed into this container")
	}
	return nil
}

// findSharedLib looks for a shared library where the dynamic loader would:
// LD_LIBRARY_PATH, the folders of /etc/ld.so.conf (with its includes), and
// the default folders (also WSL's driver folder).
func findSharedLib(name string) (string, bool) {
	dirs := filepath.SplitList(os.Getenv("LD_LIBRARY_PATH"))
	dirs = append(dirs, ldConfDirs("/etc/ld.so.conf", 0)...)
	dirs = append(dirs, "/lib", "/usr/lib", "/lib64", "/usr/lib64",
		"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
		"/usr/lib/wsl/lib")
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// ldConfDirs returns the folders an ld.so.conf file lists, following its
// `include` globs (to a small depth, against include loops).
func ldConfDirs(path string, depth int) []string {
	raw, err := os.ReadFile(path)
	if err != nil || depth > 4 {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(raw), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "include"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			pat := strings.TrimSpace(rest)
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(filepath.Dir(path), pat)
			}
			files, _ := filepath.Glob(pat)
			for _, f := range files {
				dirs = append(dirs, ldConfDirs(f, depth+1)...)
			}
			continue
		}
		dirs = append(dirs, line)
	}
	return dirs
}
