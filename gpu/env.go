package gpu

import "fmt"

// Environment variables that set Open's Options (the command line has no
// GPU-specific flags; gpu-verify.sh uses these to run the same job in each
// mode).
const (
	// EnvPrecision is "bf16" (the default: bf16 frozen weights and
	// activations) or "f32" (Options.BF16 false: closest to the CPU).
	EnvPrecision = "TRAIN_GPU_CUDA_PRECISION"
	// EnvGraphs "1" sets Options.Graphs (CUDA Graphs, graph.go); "" or
	// "0" leaves it off.
	EnvGraphs = "TRAIN_GPU_CUDA_GRAPHS"
)

// OptionsFromEnv returns Open's options as the environment (getenv, e.g.
// os.Getenv) sets them.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{BF16: true}
	switch v := getenv(EnvPrecision); v {
	case "", "bf16":
	case "f32":
		o.BF16 = false
	default:
		return o, fmt.Errorf("%s=%q: want bf16 or f32", EnvPrecision, v)
	}
	switch v := getenv(EnvGraphs); v {
	case "", "0":
	case "1":
		o.Graphs = true
	default:
		return o, fmt.Errorf("%s=%q: want 1 or 0", EnvGraphs, v)
	}
	return o, nil
}
