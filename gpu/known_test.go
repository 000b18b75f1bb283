package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/houlsby/adapters/backend"
)

// checkIndices uses the values UploadInt32 wrote instead of reading them
// back, and reads back again once the backend has written that memory.
func TestCheckIndicesKnownValues(t *testing.T) {
	b, f := newTestBackend(t)
	ids := mustAlloc(t, b, backend.I32, 6)
	require.NoError(t, b.UploadInt32(ids, []int32{0, 1, 2, 3, 4, 5}))
	f.dtoh = 0
	require.NoError(t, b.checkIndices("op", "ids", ids, 6, 6, false))
	assert.ErrorContains(t, b.checkIndices("op", "ids", ids, 6, 5, false), "op: ids[5] = 5 is outside [0, 5)")
	// A view inside the uploaded range is covered too.
	v, err := b.View(ids, 2, 3)
	require.NoError(t, err)
	assert.ErrorContains(t, b.checkIndices("op", "ids", v.(*Tensor), 3, 4, false), "ids[2] = 4")
	assert.Zero(t, f.dtoh, "no read-back while the uploaded values are known")

	// Writes the backend makes drop the record: the values are read back.
	require.NoError(t, b.Zero(v))
	require.NoError(t, b.checkIndices("op", "ids", ids, 6, 6, false))
	assert.Equal(t, 1, f.dtoh)
	other := mustAlloc(t, b, backend.I32, 6)
	require.NoError(t, b.UploadInt32(other, []int32{-1, 0, 0, 0, 0, 0}))
	require.NoError(t, b.UploadInt32(ids, []int32{0, 0, 0, 0, 0, 0}))
	require.NoError(t, b.Copy(ids, other))
	f.dtoh = 0
	assert.ErrorContains(t, b.checkIndices("op", "ids", ids, 6, 6, false), "ids[0] = -1")
	assert.NoError(t, b.checkIndices("op", "labels", ids, 6, 6, true), "negative labels allowed")
	assert.Equal(t, 2, f.dtoh)

	// Freed and reused memory is never taken for the old values.
	require.NoError(t, b.UploadInt32(other, []int32{0, 0, 0, 0, 0, 0}))
	b.Free(other)
	again := mustAlloc(t, b, backend.I32, 6) // the pool may hand the same block back
	f.dtoh = 0
	require.NoError(t, b.checkIndices("op", "ids", again, 6, 1, false))
	assert.Equal(t, 1, f.dtoh)
}
