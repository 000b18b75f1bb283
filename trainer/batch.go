package trainer

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// RNG is the trainer's random source: PCG (math/rand/v2) with a state that
// serialises into checkpoints, so a resumed run draws the same numbers.
type RNG struct {
	src *rand.PCG
	r   *rand.Rand
}

// pcgStream is the second PCG seed word: an arbitrary odd constant (the
// 64-bit golden ratio) so that one user seed gives one stream.
const pcgStream = 0x9e3779b97f4a7c15

// NewRNG seeds a generator.
func NewRNG(seed uint64) *RNG {
	src := rand.NewPCG(seed, pcgStream)
	return &RNG{src: src, r: rand.New(src)}
}

// Uint64 draws 64 random bits (e.g. a dropout seed).
func (g *RNG) Uint64() uint64 { return g.r.Uint64() }

// IntN draws from [0, n).
func (g *RNG) IntN(n int) int { return g.r.IntN(n) }

// State serialises the generator.
func (g *RNG) State() []byte {
	b, err := g.src.MarshalBinary()
	if err != nil {
		panic("trainer: PCG.MarshalBinary: " + err.Error()) // documented never to fail
	}
	return b
}

// Restore sets the generator to a State.
func (g *RNG) Restore(state []byte) error {
	if err := g.src.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("rng state: %w", err)
	}
	return nil
}

// bucketBatches is how many batches one length bucket spans: examples are
// shuffled, cut into chunks of bucketBatches·batchSize, each chunk sorted by
// length and cut into batches. 50 is fairseq's/AllenNLP's usual order of
// magnitude: wide enough to group similar lengths, narrow enough to keep
// batches random.
const bucketBatches = 50

// EpochOrder returns the batches (example indices) of one epoch:
// length-bucketed so each batch holds similar lengths (less padding), in a
// random order that depends only on (seed, epoch, lengths, batchSize), so a
// resumed run recomputes it and skips the batches already done. The last
// batch may be smaller.
func EpochOrder(seed uint64, epoch int, lengths []int, batchSize int) [][]int {
	if batchSize < 1 {
		panic(fmt.Sprintf("trainer: batch size %d", batchSize))
	}
	g := rand.New(rand.NewPCG(seed, pcgStream^uint64(epoch+1)*0xbf58476d1ce4e5b9))
	idx := g.Perm(len(lengths))
	var batches [][]int
	chunk := batchSize * bucketBatches
	for lo := 0; lo < len(idx); lo += chunk {
		c := idx[lo:min(lo+chunk, len(idx))]
		sort.SliceStable(c, func(a, b int) bool { return lengths[c[a]] > lengths[c[b]] })
		for b := 0; b < len(c); b += batchSize {
			batches = append(batches, append([]int(nil), c[b:min(b+batchSize, len(c))]...))
		}
	}
	g.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	return batches
}

// EvalOrder cuts the examples with token counts lengths into batches of
// batchSize grouped by length (longest first, ties in file order), so a
// batch pads little or, packed, runs sequences of similar cost together.
// Every example appears once; callers place results by index.
func EvalOrder(lengths []int, batchSize int) [][]int {
	idx := make([]int, len(lengths))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return lengths[idx[a]] > lengths[idx[b]] })
	var out [][]int
	for lo := 0; lo < len(idx); lo += batchSize {
		out = append(out, idx[lo:min(lo+batchSize, len(idx))])
	}
	return out
}

// Encoded is one tokenized example: token ids and token type ids, [CLS] and
// [SEP] included.
type Encoded struct {
	IDs, TypeIDs []int32
}

// Batch is a padded batch, B rows of T tokens (T = the longest row: dynamic
// padding).
type Batch struct {
	B, T int
	// IDs, TypeIDs and Mask are (B, T); Mask is 1 for real tokens.
	IDs, TypeIDs, Mask []int32
	// Labels (B) are class indices; Targets (B) regression targets.
	Labels  []int32
	Targets []float32
	// Index lists the dataset rows of the batch.
	Index []int
}

// MakeBatch pads the examples idx of enc with padID.
func MakeBatch(enc []Encoded, ds *Dataset, idx []int, padID int32) *Batch {
	b := &Batch{B: len(idx), Index: idx}
	for _, i := range idx {
		b.T = max(b.T, len(enc[i].IDs))
	}
	n := b.B * b.T
	b.IDs, b.TypeIDs, b.Mask = make([]int32, n), make([]int32, n), make([]int32, n)
	b.Labels, b.Targets = make([]int32, b.B), make([]float32, b.B)
	for r, i := range idx {
		e := enc[i]
		row := r * b.T
		for t := 0; t < b.T; t++ {
			if t < len(e.IDs) {
				b.IDs[row+t], b.Mask[row+t] = e.IDs[t], 1
				if t < len(e.TypeIDs) {
					b.TypeIDs[row+t] = e.TypeIDs[t]
				}
			} else {
				b.IDs[row+t] = padID
			}
		}
		if ds != nil {
			b.Labels[r] = int32(ds.Examples[i].Label)
			b.Targets[r] = ds.Examples[i].Target
		}
	}
	return b
}
