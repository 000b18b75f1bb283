package gpu_test

// Op tests of the grouped (serving) launchers in ops_grouped.go on the
// kernel emulator against the CPU backend, at the model's sizes (helpers in
// emu_helpers_test.go).

import (
	"math"
	"testing"

	"github.com/houlsby/adapters/backend"
)

// servingSegs is a mixed batch of 4 tasks' rows at T = 16 tokens per
// sequence: task rows of 2, 1, 3 and 1 sequences, the second without an
// adapter (a LayerNorm-only or head-only task).
var servingSegs = []int32{0, 32, 2, 32, 48, -1, 48, 96, 0, 96, 112, 1}

func TestGroupedAdapterRealSizes(t *testing.T) {
	const N, C, G = 112, 384, 3
	for _, tc := range []struct {
		name       string
		M          int
		xd, wd     backend.DType
		act        backend.Act
		atol, rtol float64
	}{
		{"f32/M=64/relu", 64, backend.F32, backend.F32, backend.ReLU, f32Atol, f32Rtol},
		{"f32/M=256/gelu", 256, backend.F32, backend.F32, backend.GELU, f32Atol, f32Rtol},
		// M > 256: backend's composition (AdapterForward per segment).
		{"f32/M=300/swish (unfused)", 300, backend.F32, backend.F32, backend.Swish, f32Atol, f32Rtol},
		{"bf16/M=64/relu", 64, backend.BF16, backend.BF16, backend.ReLU, 12 * bf16u, bf16Rtol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuo(t)
			M := tc.M
			inp := d.tensor(tc.xd, N*C, 1, nil)
			wd := d.tensor(tc.wd, G*M*C, float32(1/math.Sqrt(C)), nil)
			bd := d.tensor(tc.wd, G*M, 0.1, nil)
			wu := d.tensor(tc.wd, G*C*M, float32(1/math.Sqrt(float64(M))), nil)
			bu := d.tensor(tc.wd, G*C, 0.1, nil)
			segs := d.ints(servingSegs)
			out := d.tensor(tc.xd, N*C, 0, make([]float32, N*C))
			d.both("GroupedAdapterForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.GroupedAdapterForward(be, s(out), s(inp), s(wd), s(bd), s(wu), s(bu), s(segs), N, C, M, G, 4, tc.act)
			})
			d.compare("out", out, tc.atol, tc.rtol)
			// In place, as the serving model calls it.
			d.both("GroupedAdapterForward in place", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.GroupedAdapterForward(be, s(inp), s(inp), s(wd), s(bd), s(wu), s(bu), s(segs), N, C, M, G, 4, tc.act)
			})
			d.compare("in place", inp, tc.atol, tc.rtol)
		})
	}
}

func TestGroupedLayerNormRealSizes(t *testing.T) {
	const N, C, G = 112, 384, 4
	segs := []int32{0, 32, 2, 32, 48, 0, 48, 96, 3, 96, 112, 1}
	for _, dt := range []backend.DType{backend.F32, backend.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			d := newDuo(t)
			inp := d.tensor(dt, N*C, 1, nil)
			w := d.tensor(dt, G*C, 1, nil)
			b := d.tensor(dt, G*C, 1, nil)
			sg := d.ints(segs)
			out := d.tensor(dt, N*C, 0, make([]float32, N*C))
			d.both("GroupedLayerNormForward", func(be backend.Backend, s func(*pair) backend.Tensor) error {
				return backend.GroupedLayerNormForward(be, s(out), s(inp), s(w), s(b), s(sg), N, C, G, 4, 1e-12)
			})
			atol, rtol := f32Atol, f32Rtol
			if dt == backend.BF16 {
				atol, rtol = bf16AtolSmallTerms, bf16Rtol
			}
			d.compare("out", out, atol, rtol)
		})
	}
}

// TestGroupedSegmentTableReread: the launcher keeps the checked segment
// table until the backend writes it, then reads the new one (a stale copy
// would apply the old slots).
func TestGroupedSegmentTableReread(t *testing.T) {
	const N, C, M, G = 16, 40, 8, 2
	d := newDuo(t)
	inp := d.tensor(backend.F32, N*C, 1, nil)
	wd, bd := d.tensor(backend.F32, G*M*C, 0.2, nil), d.tensor(backend.F32, G*M, 0.1, nil)
	wu, bu := d.tensor(backend.F32, G*C*M, 0.3, nil), d.tensor(backend.F32, G*C, 0.1, nil)
	segs := d.ints([]int32{0, 6, 0, 6, 16, 1})
	out := d.tensor(backend.F32, N*C, 0, make([]float32, N*C))
	run := func(what string) {
		d.both(what, func(be backend.Backend, s func(*pair) backend.Tensor) error {
			return backend.GroupedAdapterForward(be, s(out), s(inp), s(wd), s(bd), s(wu), s(bu), s(segs), N, C, M, G, 2, backend.GELU)
		})
		d.compare(what, out, f32Atol, f32Rtol)
	}
	run("first table")
	for _, be := range []backend.Backend{d.g, d.c} {
		side := segs.c
		if be == backend.Backend(d.g) {
			side = segs.g
		}
		if err := be.UploadInt32(side, []int32{0, 11, 1, 11, 16, -1}); err != nil {
			t.Fatal(err)
		}
	}
	run("second table")
}
