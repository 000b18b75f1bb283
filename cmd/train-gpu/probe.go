package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/houlsby/adapters/gpu"
)

const probeHelp = `
Usage: train-gpu probe [--gpu N] [--json]

Says which device --device auto would use, and why: GPU N through the CUDA
build (train-gpu-cuda next to this program, or $TRAIN_GPU_CUDA), or the CPU
with the stage that failed (guard, build, driver, library, probe; see
docs/gpu-status.md, "One program"). With a GPU it prints the device, the
driver's CUDA version, and the peak memory bandwidth and bf16 tensor-core
rate the benchmarks' rooflines use. Exit status 0 when the GPU is usable,
1 when not.
`

// probeAnswer is probe's --json output.
type probeAnswer struct {
	Build     string          `json:"build"` // "cpu" or "cuda": which build answered
	Usable    bool            `json:"usable"`
	CUDABuild string          `json:"cuda_build,omitempty"`
	Stage     string          `json:"stage,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Info      *gpu.DeviceInfo `json:"info,omitempty"`
	Peaks     string          `json:"peaks,omitempty"`
}

func runProbe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("probe", probeHelp, stdout)
	ordinal := fs.Int("gpu", 0, "CUDA device ordinal")
	asJSON := fs.Bool("json", false, "print one JSON object")
	child := fs.Bool("child", false, "internal: answer the hand-off of a CPU build (one JSON line)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *ordinal < 0 {
		return fmt.Errorf("--gpu %d: must be >= 0", *ordinal)
	}
	if *child {
		// The hand-off asks: can this build, as the CUDA build, use the GPU?
		if !gpu.CUDABuild {
			return errors.New("this is the CPU build (built without -tags cuda), not the CUDA build")
		}
		info, err := gpu.Probe(*ordinal)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(probeReply{OK: true, Info: info})
	}
	a := probeAnswer{Build: "cpu"}
	if gpu.CUDABuild {
		a.Build = "cuda"
		info, err := gpu.Probe(*ordinal)
		if err != nil {
			a.Stage, a.Reason = "open", err.Error()
		} else {
			a.Usable, a.Info = true, &info
		}
	} else {
		r := newHandoff().check(*ordinal)
		a.CUDABuild, a.Usable, a.Stage, a.Reason = r.Path, r.ok(), r.Stage, r.Reason
		if r.ok() {
			a.Info = &r.Info
		}
	}
	if a.Info != nil {
		a.Peaks = a.Info.Peaks()
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(a); err != nil {
			return err
		}
	} else {
		printProbe(stdout, a, *ordinal)
	}
	if !a.Usable {
		return fmt.Errorf("no usable GPU %d (stage %s)", *ordinal, a.Stage)
	}
	return nil
}

// printProbe writes the answer for a person.
func printProbe(w io.Writer, a probeAnswer, ordinal int) {
	fmt.Fprintf(w, "build: %s\n", a.Build)
	if a.CUDABuild != "" {
		fmt.Fprintf(w, "CUDA build: %s\n", a.CUDABuild)
	}
	if !a.Usable {
		fmt.Fprintf(w, "--device auto uses: the CPU\nwhy: %s (stage %s)\n", a.Reason, a.Stage)
		return
	}
	i := a.Info
	fmt.Fprintf(w, "--device auto uses: GPU %d, %s\ndriver: CUDA %s\nSMs: %d at %d MHz; memory %.1f GiB\npeaks: %s\n",
		ordinal, i.Description, i.Driver(), i.SMs, i.ClockKHz/1000, float64(i.TotalMem)/(1<<30), a.Peaks)
}
