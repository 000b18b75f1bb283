package model

import (
	"errors"
	"fmt"

	"github.com/houlsby/adapters/backend"
)

// Caching frozen layers. When nothing in the embeddings and layers
// 0..k-1 trains and those run without dropout (Options.NoFrozenDropout),
// layer k's input depends on the example alone: a trainer can compute it
// once (CacheValues after a Forward), keep it, and in later epochs start the
// model at layer k (ForwardFrom), with results identical to recomputation.
// When no encoder layer trains (k = L), what is cached is the head's input
// per sequence: the [CLS] row for the pooler and the cls_dense head, the
// pooled vector for the cls head, and for the mean head the last hidden
// state's rows (the mean itself is one GEMM over the whole batch, whose
// rounding depends on where a sequence's rows fall in it, so it is
// recomputed: a [CLS] row is copied exactly wherever it lies).

// CachePoint returns the layer k whose input ForwardFrom takes: the lowest
// layer with a trainable tensor (k = L: only the pooler or the head train,
// and the head's input is cached). Caching is sound (ok) when the embeddings
// are frozen and Options.NoFrozenDropout is set, so that nothing below k
// depends on anything but the example.
func (m *Model) CachePoint() (int, bool) {
	k := min(m.lowestLayer, m.L)
	return k, m.opts.NoFrozenDropout && k >= 0
}

// CacheValues copies, after a successful Forward (not ForwardFrom), each
// sequence's values at the cache point into dst[s]: its real tokens' rows of
// layer k's input, in order (len×C floats), or its head input (C floats).
// dst[s] is grown as needed; the copies are exact.
func (m *Model) CacheValues(dst [][]float32) error {
	k, ok := m.CachePoint()
	switch {
	case !ok:
		return errors.New("model: CacheValues without a sound cache point (frozen embeddings and Options.NoFrozenDropout)")
	case !m.step.done || m.step.fromCache:
		return errors.New("model: CacheValues needs a successful Forward (not ForwardFrom) first")
	case len(dst) != m.step.sh.B:
		return fmt.Errorf("model: CacheValues: %d destinations for %d sequences", len(dst), m.step.sh.B)
	}
	sh, C := m.step.sh, m.C
	if m.cachesHeadInput(k) {
		src := m.poolDst()
		if m.pooling == PoolingPooler && !m.packed {
			// The padded pooler reads [CLS] rows in place: gather them.
			if err := m.gatherCLS(sh); err != nil {
				return err
			}
		}
		host := make([]float32, sh.B*C)
		if err := m.b.Download(host, m.prefix(src, sh.B*C)); err != nil {
			return wrap(err, "downloading the head input")
		}
		for s := range dst {
			dst[s] = append(dst[s][:0], host[s*C:(s+1)*C]...)
		}
		return nil
	}
	x := m.layerInput(k)
	host := make([]float32, sh.N*C)
	if err := m.b.Download(host, m.prefix(x, sh.N*C)); err != nil {
		return wrap(err, "downloading layer %d's input", k)
	}
	m.eachRow(sh, func(s, row, packedRow int) {
		if packedRow == m.rowStart(sh, s) {
			dst[s] = dst[s][:0]
		}
		dst[s] = append(dst[s], host[row*C:(row+1)*C]...)
	})
	return nil
}

// ForwardFrom is Forward from the cache point on: cached[s] holds sequence
// s's values there, as CacheValues gave them. With the same cached values
// it computes bitwise what Forward would, and Backward works after it.
func (m *Model) ForwardFrom(bt *Batch, cached [][]float32, train bool, dropoutSeed uint64) (float32, []float32, error) {
	if _, ok := m.CachePoint(); !ok {
		return 0, nil, errors.New("model: ForwardFrom without a sound cache point (frozen embeddings and Options.NoFrozenDropout)")
	}
	if len(cached) != bt.B {
		return 0, nil, fmt.Errorf("model: ForwardFrom: %d cached sequences for a batch of %d", len(cached), bt.B)
	}
	return m.forward(bt, train, dropoutSeed, cached)
}

// placeCached uploads the cached values into the input of the cache point
// and returns its layer.
func (m *Model) placeCached(bt *Batch, sh shape, cached [][]float32) (int, error) {
	k, _ := m.CachePoint()
	C := m.C
	if m.cachesHeadInput(k) {
		host := make([]float32, sh.B*C)
		for s, v := range cached {
			if len(v) != C {
				return 0, fmt.Errorf("model: cached head input of sequence %d has %d values, want %d", s, len(v), C)
			}
			copy(host[s*C:], v)
		}
		return k, wrap(m.b.Upload(m.prefix(m.poolDst(), sh.B*C), host), "uploading the cached head input")
	}
	host := make([]float32, sh.N*C) // padding rows stay 0: no real row reads them
	for s, v := range cached {
		if n := m.rowStart(sh, s+1) - m.rowStart(sh, s); len(v) != n*C {
			return 0, fmt.Errorf("model: cached input of sequence %d has %d values, want %d tokens × %d", s, len(v), n, C)
		}
	}
	m.eachRow(sh, func(s, row, packedRow int) {
		i := packedRow - m.rowStart(sh, s)
		copy(host[row*C:(row+1)*C], cached[s][i*C:(i+1)*C])
	})
	return k, wrap(m.b.Upload(m.prefix(m.layerInput(k), sh.N*C), host), "uploading layer %d's cached input", k)
}

// cachesHeadInput reports whether the cache point k holds one vector per
// sequence (the head's input) rather than the rows of layer k's input
// (k = L: the last hidden state's).
func (m *Model) cachesHeadInput(k int) bool { return k == m.L && m.pooling != PoolingMean }

// layerInput is the tensor layer k reads (k = L: the last hidden state).
func (m *Model) layerInput(k int) backend.Tensor {
	if k == 0 {
		return m.embActs.out
	}
	return m.acts[k-1].out
}

// prefix is a view of t's first n elements (uploads and downloads need
// exact sizes).
func (m *Model) prefix(t backend.Tensor, n int) backend.Tensor {
	v, err := m.b.View(t, 0, n)
	if err != nil {
		panic("model: prefix view: " + err.Error()) // n never exceeds the buffer
	}
	return v
}

// rowStart is the index among the batch's real tokens of sequence s's first
// one (s = B: their count).
func (m *Model) rowStart(sh shape, s int) int {
	if m.packed {
		return int(m.host.starts[s])
	}
	n := 0
	for i := 0; i < s*sh.T; i++ {
		n += int(m.host.mask[i])
	}
	return n
}

// eachRow calls f for every real token in order: its sequence, its row in
// the layout and its index among the batch's real tokens.
func (m *Model) eachRow(sh shape, f func(s, row, packedRow int)) {
	if m.packed {
		for s := 0; s < sh.B; s++ {
			for r := int(m.host.starts[s]); r < int(m.host.starts[s+1]); r++ {
				f(s, r, r)
			}
		}
		return
	}
	n := 0
	for row := 0; row < sh.B*sh.T; row++ {
		if m.host.mask[row] == 1 {
			f(row/sh.T, row, n)
			n++
		}
	}
}

// gatherCLS copies each sequence's [CLS] row (column 0) of the padded last
// hidden state into headAct.gath.
func (m *Model) gatherCLS(sh shape) error {
	C := m.C
	host := make([]float32, sh.B*sh.T*C)
	if err := m.b.Download(host, m.prefix(m.acts[m.L-1].out, sh.B*sh.T*C)); err != nil {
		return wrap(err, "downloading the last hidden state")
	}
	rows := make([]float32, sh.B*C)
	for s := 0; s < sh.B; s++ {
		copy(rows[s*C:(s+1)*C], host[s*sh.T*C:(s*sh.T+1)*C])
	}
	return wrap(m.b.Upload(m.prefix(m.headAct.gath, sh.B*C), rows), "uploading the [CLS] rows")
}
