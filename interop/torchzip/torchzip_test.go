package torchzip

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixtures are real torch.save files (testdata/make_fixtures.py, torch
// 2.15); their values are small integers and halves, exact in every dtype.
func TestReadFixtures(t *testing.T) {
	sd, err := ReadFile(filepath.Join("testdata", "state_dict.bin"))
	require.NoError(t, err)
	assert.Equal(t, []string{"f16", "b16", "d64", "lin.weight", "lin.bias", "strided", "offset", "scalar"}, sd.Names) // the module's own buffers, then its children's
	want := map[string]Tensor{
		"lin.weight": {Shape: []int{2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}},
		"lin.bias":   {Shape: []int{2}, Data: []float32{-1, 0.5}},
		"f16":        {Shape: []int{4}, Data: []float32{0, 0.5, 1, 1.5}},
		"b16":        {Shape: []int{3}, Data: []float32{-1, 0, 1}},
		"d64":        {Shape: []int{2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}},
		// arange(12).reshape(3, 4).t(): stride (1, 4) into the storage.
		"strided": {Shape: []int{4, 3}, Data: []float32{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}},
		"offset":  {Shape: []int{3}, Data: []float32{5, 6, 7}},
		"scalar":  {Shape: []int{}, Data: []float32{2.5}},
	}
	for name, w := range want {
		got := sd.Tensors[name]
		require.NotNil(t, got, name)
		assert.Equal(t, w.Shape, got.Shape, name)
		assert.Equal(t, w.Data, got.Data, name)
	}

	sd, err = ReadFile(filepath.Join("testdata", "plain_dict.bin"))
	require.NoError(t, err)
	assert.Equal(t, []string{"a.weight", "a.bias"}, sd.Names)
	assert.Equal(t, []float32{1, 1, 1, 1}, sd.Tensors["a.weight"].Data)

	sd, err = ReadFile(filepath.Join("testdata", "parameter.bin"))
	require.NoError(t, err)
	assert.Equal(t, []float32{3, 3}, sd.Tensors["p"].Data)
}

func TestRefusesNonStateDicts(t *testing.T) {
	_, err := ReadFile(filepath.Join("testdata", "not_tensors.bin"))
	assert.ErrorContains(t, err, "not a state dict of tensors")
	assert.ErrorContains(t, err, "not_tensors.bin")
	_, err = ReadFile(filepath.Join("testdata", "legacy.bin"))
	assert.ErrorContains(t, err, "legacy format")
}

// pk builds pickles: opcodes and their arguments.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }
func (p *pk) str(s string) *pk {
	p.WriteByte(opBinUnicode)
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}
func (p *pk) global(module, name string) *pk {
	p.WriteByte(opGlobal)
	p.WriteString(module + "\n" + name + "\n")
	return p
}
func (p *pk) int1(v byte) *pk { return p.op(opBinInt1, v) }

// tensorPickle is {"w": _rebuild_tensor_v2(storage "0" of numel floats,
// offset, size, stride, False, OrderedDict())}.
func tensorPickle(numel byte, offset byte, size, stride []byte) []byte {
	var p pk
	p.op(opProto, 2, opEmptyDict, opMark).str("w")
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op(opMark, opMark).str("storage").global("torch", "FloatStorage").str("0").str("cpu").int1(numel).op(opTuple, opBinPersID)
	p.int1(offset)
	p.op(opMark)
	for _, s := range size {
		p.int1(s)
	}
	p.op(opTuple, opMark)
	for _, s := range stride {
		p.int1(s)
	}
	p.op(opTuple, opNewFalse).global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opTuple, opReduce)
	p.op(opSetItems, opStop)
	return p.Bytes()
}

// archive zips a pickle and float32 storages (key -> values) the way
// torch.save lays them out.
func archive(t testing.TB, pickle []byte, storages map[string][]float32) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		require.NoError(t, err)
		_, err = f.Write(b)
		require.NoError(t, err)
	}
	add("archive/data.pkl", pickle)
	add("archive/byteorder", []byte("little"))
	for k, v := range storages {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		add("archive/data/"+k, b)
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func read(b []byte) (*StateDict, error) { return Read(bytes.NewReader(b), int64(len(b))) }

func TestHandBuiltTensor(t *testing.T) {
	st := map[string][]float32{"0": {0, 1, 2, 3, 4, 5}}
	sd, err := read(archive(t, tensorPickle(6, 1, []byte{2, 2}, []byte{1, 2}), st))
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 3, 2, 4}, sd.Tensors["w"].Data)

	for _, tc := range []struct {
		name, want string
		pickle     []byte
		storages   map[string][]float32
	}{
		{"past the storage", "reach element 6", tensorPickle(6, 1, []byte{2, 3}, []byte{3, 1}), st},
		{"more elements than the storage", "more elements than the storage", tensorPickle(6, 0, []byte{7}, []byte{1}), st},
		{"stride-0 expansion", "more elements than the storage", tensorPickle(1, 0, []byte{200}, []byte{0}), map[string][]float32{"0": {1}}},
		{"storage size mismatch", "holds 24 bytes", tensorPickle(5, 0, []byte{5}, []byte{1}), st},
		{"missing storage", "no entry archive/data/0", tensorPickle(6, 0, []byte{6}, []byte{1}), nil},
	} {
		_, err := read(archive(t, tc.pickle, tc.storages))
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
}

// Pickles that would run code, or are not state dicts, are refused with the
// opcode or global named; nothing is ever called.
func TestRefusesHostilePickles(t *testing.T) {
	var sys, stackGlobal, inst, eval, reduceStorage, build pk
	sys.op(opProto, 2).global("os", "system").str("echo pwned").op(opTuple1, opReduce, opStop)
	stackGlobal.op(opProto, 4).op(opShortBinUni, 8).op([]byte("builtins")...).op(opShortBinUni, 4).op([]byte("exec")...).op(opStackGlobal, opStop)
	inst.op(opProto, 2, opMark).op('i').op([]byte("os\nsystem\n")...).op(opStop)
	eval.op(opProto, 2).global("torch._utils", "_rebuild_tensor_v2\nos").op(opStop)
	reduceStorage.op(opProto, 2).global("torch", "FloatStorage").op(opEmptyTuple, opReduce, opStop)
	build.op(opProto, 2, opEmptyDict, opEmptyDict, opBuild, opStop)
	for _, tc := range []struct {
		name, want string
		pickle     []byte
	}{
		{"os.system", "global os.system is not allowed", sys.Bytes()},
		{"builtins.exec via STACK_GLOBAL", "global builtins.exec is not allowed", stackGlobal.Bytes()},
		{"INST", "opcode INST", inst.Bytes()},
		{"newline smuggled into GLOBAL", "opcode OBJ", eval.Bytes()},
		{"calling a storage class", "cannot be called", reduceStorage.Bytes()},
		{"BUILD on a plain dict", "only an OrderedDict's attributes", build.Bytes()},
		{"no STOP", "without STOP", []byte{opProto, 2, opEmptyDict}},
		{"underflow", "stack underflow", []byte{opProto, 2, opTuple2, opStop}},
		{"memo miss", "memo entry 7 not set", []byte{opProto, 2, opBinGet, 7, opStop}},
		{"huge string", "string of", []byte{opBinUnicode, 0xff, 0xff, 0xff, 0xff}},
		{"protocol 1", "protocol 1", []byte{opProto, 1}},
		{"not a dict", "holds an integer", []byte{opProto, 2, opBinInt1, 3, opStop}},
	} {
		_, err := read(archive(t, tc.pickle, nil))
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
}

func TestRefusesOtherArchives(t *testing.T) {
	_, err := read([]byte("\x80\x02}q\x00."))
	assert.ErrorContains(t, err, "not a zip archive")
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, _ := w.Create("x/other.txt")
	f.Write([]byte("hi"))
	w.Close()
	_, err = read(buf.Bytes())
	assert.ErrorContains(t, err, "0 <prefix>/data.pkl entries")
}

func FuzzRead(f *testing.F) {
	for _, name := range []string{"state_dict.bin", "plain_dict.bin", "parameter.bin", "not_tensors.bin", "legacy.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add(archive(f, tensorPickle(6, 1, []byte{2, 2}, []byte{1, 2}), map[string][]float32{"0": {0, 1, 2, 3, 4, 5}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := read(b)
		if err != nil {
			return
		}
		for _, name := range sd.Names {
			tn := sd.Tensors[name]
			n := 1
			for _, d := range tn.Shape {
				n *= d
			}
			if n != len(tn.Data) {
				t.Fatalf("%s: shape %v with %d values", name, tn.Shape, len(tn.Data))
			}
		}
	})
}

// FuzzUnpickle drives the pickle machine directly (a zip wrapper would hide
// most mutations behind its checksums), with storages of zeros.
func FuzzUnpickle(f *testing.F) {
	f.Add(tensorPickle(6, 1, []byte{2, 2}, []byte{1, 2}))
	for _, name := range []string{"state_dict.bin", "plain_dict.bin", "parameter.bin", "not_tensors.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		require.NoError(f, err)
		for _, e := range zr.File {
			if filepath.Base(e.Name) == "data.pkl" {
				raw, err := readEntry(e, maxPickle, int64(len(b)))
				require.NoError(f, err)
				f.Add(raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		load := func(key string, dtype DType, numel int64) ([]float32, error) {
			return make([]float32, numel), nil // numel <= maxElements: checked before loading
		}
		v, err := unpickle(b, load)
		if err != nil {
			return
		}
		_, _ = stateDict(v)
	})
}
