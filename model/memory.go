package model

// Bytes is the device memory the model holds: its parameter, gradient and
// activation arenas (each allocated once, see New), in bytes.
func (m *Model) Bytes() int64 {
	var n int64
	for _, t := range m.arenas {
		if t != nil {
			n += int64(t.Len()) * int64(t.DType().Size())
		}
	}
	return n
}
