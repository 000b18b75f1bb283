package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	o, err := OptionsFromEnv(get)
	assert.NoError(t, err)
	assert.True(t, o.BF16, "bf16 by default")
	env[EnvPrecision] = "f32"
	o, err = OptionsFromEnv(get)
	assert.NoError(t, err)
	assert.False(t, o.BF16)
	assert.False(t, o.Graphs, "graphs off by default")
	env[EnvGraphs] = "1"
	o, err = OptionsFromEnv(get)
	assert.NoError(t, err)
	assert.True(t, o.Graphs)
	env[EnvGraphs] = "yes"
	_, err = OptionsFromEnv(get)
	assert.ErrorContains(t, err, `TRAIN_GPU_CUDA_GRAPHS="yes": want 1 or 0`)
	env[EnvGraphs] = ""
	env[EnvPrecision] = "fp8"
	_, err = OptionsFromEnv(get)
	assert.ErrorContains(t, err, `TRAIN_GPU_CUDA_PRECISION="fp8": want bf16 or f32`)
}
