package cpu

import (
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// tableRows returns V, the number of rows of an embedding table (V, C).
func tableRows(t backend.Tensor, C int) int {
	if C == 0 {
		return 0
	}
	return t.Len() / C
}

// checkIDs returns an error naming the first id outside [0, V).
func checkIDs(op string, ids []int32, V int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			return fmt.Errorf("%s: ids[%d] = %d is outside the table's %d rows", op, i, id, V)
		}
	}
	return nil
}

// EmbeddingForward gathers rows of table (V, C) by ids (N) into out (N, C);
// with accumulate it adds them to out.
func (be *Backend) EmbeddingForward(out, ids, table backend.Tensor, N, C int, accumulate bool) error {
	const op = "cpu.EmbeddingForward"
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
	idv, err := i32(op, "ids", ids, N)
	if err != nil {
		return err
	}
	if _, err := f32(op, "table", table, 0); err != nil {
		return err
	}
	V := tableRows(table, C)
	tv := table.(*Tensor).Data
	if err := checkIDs(op, idv, V); err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.emb = embTask{out: ov, table: tv, ids: idv, C: C, accumulate: accumulate}
	parallelRange(N, grainRows, &be.emb)
	be.emb = embTask{}
	return nil
}

// EmbeddingBackward scatter-adds dout (N, C) into dtable (V, C) (+=). Each
// column block is owned by one goroutine, which adds rows in order 0..N-1,
// so repeated ids accumulate deterministically.
func (be *Backend) EmbeddingBackward(dtable, dout, ids backend.Tensor, N, C int) error {
	const op = "cpu.EmbeddingBackward"
	if err := nonneg(op, "N,C", N, C); err != nil {
		return err
	}
	nc, err := mul(op, N, C)
	if err != nil {
		return err
	}
	if _, err := f32(op, "dtable", dtable, 0); err != nil {
		return err
	}
	gv, err := f32(op, "dout", dout, nc)
	if err != nil {
		return err
	}
	idv, err := i32(op, "ids", ids, N)
	if err != nil {
		return err
	}
	V := tableRows(dtable, C)
	tv := dtable.(*Tensor).Data
	if err := checkIDs(op, idv, V); err != nil {
		return err
	}
	if C == 0 {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	be.emb = embTask{back: true, out: gv, table: tv, ids: idv, C: C}
	parallelRange((C+colBlock-1)/colBlock, 1, &be.emb)
	be.emb = embTask{}
	return nil
}

// embTask gathers rows (forward, over rows) or scatter-adds them (back, over
// column blocks: each block owned by one worker, rows added in order).
type embTask struct {
	back, accumulate bool
	out, table       []float32 // forward: out (N, C) from table; back: dout into dtable
	ids              []int32
	C                int
}

func (t *embTask) run(_, lo, hi int) {
	C := t.C
	if t.back {
		c0, c1 := lo*colBlock, min(hi*colBlock, C)
		for n, id := range t.ids {
			src := t.out[n*C+c0 : n*C+c1]
			dst := t.table[int(id)*C+c0 : int(id)*C+c1]
			for j, v := range src {
				dst[j] += v
			}
		}
		return
	}
	for n := lo; n < hi; n++ {
		id := int(t.ids[n])
		src := t.table[id*C : id*C+C]
		dst := t.out[n*C : n*C+C]
		if t.accumulate {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}
