package cpu

import (
	"fmt"
	"math"

	"github.com/houlsby/adapters/backend"
)

// SoftmaxCrossEntropy writes each row's loss (N) for logits (N, V) and
// labels (N, I32), and, when dlogits is not nil, dlogits = scale·(softmax -
// onehot) (=). Rows with a negative label get zero loss and zero gradient; a
// label >= V is an error. The log-sum-exp is shifted by the row maximum and
// accumulated in float64.
func (be *Backend) SoftmaxCrossEntropy(loss, dlogits, logits, labels backend.Tensor, N, V int, scale float32) error {
	const op = "cpu.SoftmaxCrossEntropy"
	if err := nonneg(op, "N,V", N, V); err != nil {
		return err
	}
	nv, err := mul(op, N, V)
	if err != nil {
		return err
	}
	lv, err := f32(op, "loss", loss, N)
	if err != nil {
		return err
	}
	dv, err := optF32(op, "dlogits", dlogits, nv)
	if err != nil {
		return err
	}
	xv, err := f32(op, "logits", logits, nv)
	if err != nil {
		return err
	}
	yv, err := i32(op, "labels", labels, N)
	if err != nil {
		return err
	}
	for i, y := range yv {
		if int(y) >= V {
			return fmt.Errorf("%s: labels[%d] = %d is not below V = %d", op, i, y, V)
		}
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ce = ceTask{loss: lv, dlogits: dv, logits: xv, labels: yv, V: V, scale: scale}
	parallelRange(N, grainRows, &be.ce)
	be.ce = ceTask{}
	return nil
}

// MSE sets loss = (pred-target)² and, when dpred is not nil,
// dpred = scale·2·(pred-target) (=), over N elements.
func (be *Backend) MSE(loss, dpred, pred, target backend.Tensor, N int, scale float32) error {
	const op = "cpu.MSE"
	if err := nonneg(op, "N", N); err != nil {
		return err
	}
	lv, err := f32(op, "loss", loss, N)
	if err != nil {
		return err
	}
	dv, err := optF32(op, "dpred", dpred, N)
	if err != nil {
		return err
	}
	pv, err := f32(op, "pred", pred, N)
	if err != nil {
		return err
	}
	tv, err := f32(op, "target", target, N)
	if err != nil {
		return err
	}
	for i := range lv {
		d := pv[i] - tv[i]
		lv[i] = d * d
		if dv != nil {
			dv[i] = scale * 2 * d
		}
	}
	return nil
}

// AdamWStep updates n elements of param from grad with moments m and v
// (Loshchilov & Hutter, decoupled weight decay, as torch.optim.AdamW):
//
//	m = β1·m + (1-β1)·g,  v = β2·v + (1-β2)·g²
//	param -= LR·(wd·param + (m/(1-β1ᵗ)) / (√(v/(1-β2ᵗ)) + ε))
//
// with wd = h.WeightDecay inside the ranges of the decay table and 0
// outside (see backend.Backend.AdamWStep).
func (be *Backend) AdamWStep(param, grad, m, v, decay backend.Tensor, n int, h backend.AdamW) error {
	const op = "cpu.AdamWStep"
	if err := nonneg(op, "n", n); err != nil {
		return err
	}
	if h.Step < 1 {
		return fmt.Errorf("%s: Step = %d, want >= 1 (it counts from 1)", op, h.Step)
	}
	if !(h.Beta1 >= 0 && h.Beta1 < 1 && h.Beta2 >= 0 && h.Beta2 < 1) {
		return fmt.Errorf("%s: betas (%v, %v) must lie in [0, 1)", op, h.Beta1, h.Beta2)
	}
	pv, err := f32(op, "param", param, n)
	if err != nil {
		return err
	}
	gv, err := f32(op, "grad", grad, n)
	if err != nil {
		return err
	}
	mv, err := f32(op, "m", m, n)
	if err != nil {
		return err
	}
	vv, err := f32(op, "v", v, n)
	if err != nil {
		return err
	}
	ranges, err := decayRanges(op, decay, n)
	if err != nil {
		return err
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.ew = ewTask{kind: ewAdamW, o: pv, a: gv, b: mv, c: vv, h: h, ranges: ranges,
		bc1: float32(1 - math.Pow(float64(h.Beta1), float64(h.Step))),
		bc2: float32(1 - math.Pow(float64(h.Beta2), float64(h.Step)))}
	be.runEW(n, grainElems)
	return nil
}

// decayRanges returns AdamWStep's validated decay table (nil for none).
func decayRanges(op string, decay backend.Tensor, n int) ([]int32, error) {
	if ct, ok := decay.(*Tensor); decay == nil || ok && ct == nil {
		return nil, nil
	}
	dt, err := asTensor(op, "decay", decay)
	if err != nil {
		return nil, err
	}
	r, err := i32(op, "decay", dt, dt.n)
	if err != nil {
		return nil, err
	}
	return r, backend.CheckDecayRanges(op, r, n)
}

// ceTask is softmax cross-entropy over rows.
type ceTask struct {
	loss, dlogits, logits []float32
	labels                []int32
	V                     int
	scale                 float32
}

func (t *ceTask) run(_, lo, hi int) {
	V := t.V
	for n := lo; n < hi; n++ {
		y := t.labels[n]
		var d []float32
		if t.dlogits != nil {
			d = t.dlogits[n*V : n*V+V]
		}
		if y < 0 {
			t.loss[n] = 0
			clear(d)
			continue
		}
		x := t.logits[n*V : n*V+V]
		mx := x[0]
		for _, v := range x {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range x {
			s += math.Exp(float64(v - mx))
		}
		lse := float64(mx) + math.Log(s)
		t.loss[n] = float32(lse - float64(x[y]))
		if d != nil {
			for j, v := range x {
				d[j] = t.scale * float32(math.Exp(float64(v)-lse))
			}
			d[y] -= t.scale
		}
	}
}
