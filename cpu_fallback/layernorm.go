package cpu

import (
	"math"

	"github.com/houlsby/adapters/backend"
)

// LayerNormForward sets out = (inp-mean)·rstd·w + b over the rows of inp
// (N, C) and saves mean and rstd (N). Row statistics accumulate in float64:
// it costs nothing measurable next to the memory traffic and keeps the
// variance of rows with a large mean accurate.
func (be *Backend) LayerNormForward(out, mean, rstd, inp, w, b backend.Tensor, N, C int, eps float32) error {
	const op = "cpu.LayerNormForward"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	ov, err := f32(op, "out", out, nc)
	if err != nil {
		return err
	}
	mv, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rv, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wv, err := f32(op, "w", w, C)
	if err != nil {
		return err
	}
	bv, err := f32(op, "b", b, C)
	if err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	parallelFor(N, grainRows, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := iv[n*C : n*C+C]
			var s float64
			for _, v := range x {
				s += float64(v)
			}
			m := s / float64(C)
			var ss float64
			for _, v := range x {
				d := float64(v) - m
				ss += d * d
			}
			r := 1 / math.Sqrt(ss/float64(C)+float64(eps))
			mf, rf := float32(m), float32(r)
			o := ov[n*C : n*C+C]
			for j, v := range x {
				o[j] = (v-mf)*rf*wv[j] + bv[j]
			}
			mv[n], rv[n] = mf, rf
		}
	})
	return nil
}

// LayerNormBackward sets dinp (=) and accumulates dw and db (+=; nil when
// frozen) from dout (N, C) and the forward's inp, w, mean and rstd.
//
//	x̂ = (inp-mean)·rstd, g = dout·w
//	dinp = rstd·(g - mean(g) - x̂·mean(g·x̂)),  dw += Σ dout·x̂,  db += Σ dout
func (be *Backend) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd backend.Tensor, N, C int) error {
	const op = "cpu.LayerNormBackward"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	div, err := optF32(op, "dinp", dinp, nc)
	if err != nil {
		return err
	}
	dwv, err := optF32(op, "dw", dw, C)
	if err != nil {
		return err
	}
	dbv, err := optF32(op, "db", db, C)
	if err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	iv, err := f32(op, "inp", inp, nc)
	if err != nil {
		return err
	}
	wv, err := f32(op, "w", w, C)
	if err != nil {
		return err
	}
	mv, err := f32(op, "mean", mean, N)
	if err != nil {
		return err
	}
	rv, err := f32(op, "rstd", rstd, N)
	if err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	// Parameter gradients first (dinp may alias dout): column blocks, rows
	// in order, so the sums do not depend on the core count.
	if dwv != nil || dbv != nil {
		nb := (C + colBlock - 1) / colBlock
		parallelFor(nb, 1, func(lo, hi int) {
			var aw, ab [colBlock]float32
			for blk := lo; blk < hi; blk++ {
				c0 := blk * colBlock
				c1 := min(c0+colBlock, C)
				sw, sb := aw[:c1-c0], ab[:c1-c0]
				clear(sw)
				clear(sb)
				for n := 0; n < N; n++ {
					m, r := mv[n], rv[n]
					g := gv[n*C+c0 : n*C+c1]
					x := iv[n*C+c0 : n*C+c1]
					for j, d := range g {
						sw[j] += d * ((x[j] - m) * r)
						sb[j] += d
					}
				}
				if dwv != nil {
					for j, v := range sw {
						dwv[c0+j] += v
					}
				}
				if dbv != nil {
					for j, v := range sb {
						dbv[c0+j] += v
					}
				}
			}
		})
	}
	if div == nil {
		return nil
	}
	parallelFor(N, grainRows, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			m, r := mv[n], rv[n]
			g := gv[n*C : n*C+C]
			x := iv[n*C : n*C+C]
			var sg, sgx float32
			for j, d := range g {
				gw := d * wv[j]
				sg += gw
				sgx += gw * ((x[j] - m) * r)
			}
			sg /= float32(C)
			sgx /= float32(C)
			o := div[n*C : n*C+C]
			for j, d := range g {
				xh := (x[j] - m) * r
				o[j] = r * (d*wv[j] - sg - xh*sgx)
			}
		}
	})
	return nil
}
