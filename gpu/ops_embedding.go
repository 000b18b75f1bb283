package gpu

import "github.com/houlsby/adapters/backend"

// EmbeddingForward gathers rows of table (V, C; F32 or BF16) by ids (N, I32)
// into out (N, C); with accumulate it adds them to out. V is
// table.Len()/C. An id outside [0, V) is an error; checking costs reading
// the ids back to the host (see checkIndices).
func (b *Backend) EmbeddingForward(out, ids, table backend.Tensor, N, C int, accumulate bool) error {
	const op = "gpu.EmbeddingForward"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	ot, err := activ(op, "out", out, nc)
	if err != nil {
		return err
	}
	it, err := i32(op, "ids", ids, N)
	if err != nil {
		return err
	}
	tt, err := weight(op, "table", table, 0)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	V := tt.n / C
	if err := b.checkIndices(op, "ids", it, N, V, false); err != nil {
		return err
	}
	return b.launch(op, kEmbFwd.of(ot, tt), grid1D(nc), b1(block1D), 0,
		ptr(ot), ptr(it), ptr(tt), Int(N), Int(C), Int(V), i64(accumulate))
}

// EmbeddingBackward scatter-adds dout (N, C) into dtable (V, C) (+=),
// deterministically: one thread per column walks the rows in order (no
// atomics). An id outside [0, V) is an error (see checkIndices).
func (b *Backend) EmbeddingBackward(dtable, dout, ids backend.Tensor, N, C int) error {
	const op = "gpu.EmbeddingBackward"
	if err := sizes(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mulOK(op, N, C)
	if err != nil {
		return err
	}
	dt, err := f32(op, "dtable", dtable, 0)
	if err != nil {
		return err
	}
	gt, err := activ(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	it, err := i32(op, "ids", ids, N)
	if err != nil {
		return err
	}
	if nc == 0 {
		return nil
	}
	if err := b.checkIndices(op, "ids", it, N, dt.n/C, false); err != nil {
		return err
	}
	return b.launch(op, kEmbBwd.of(gt), Dim3{X: uint32((C + 127) / 128), Y: 1, Z: 1}, b1(128), 0,
		ptr(dt), ptr(gt), ptr(it), Int(N), Int(C), Int(dt.n/C))
}
