// Package safetensors reads and writes the safetensors tensor file format
// (https://github.com/huggingface/safetensors) and enforces the same rules as
// the reference Rust implementation (safetensors/src/tensor.rs,
// SafeTensors::read_metadata and Metadata::validate), plus a few stricter
// ones that the reference leaves to chance:
//
//   - the file starts with an 8-byte little-endian header length n;
//   - n is at most 100,000,000 (the reference's MAX_HEADER_SIZE);
//   - the n header bytes are UTF-8 JSON: one object whose keys are tensor
//     names, plus an optional "__metadata__" object mapping strings to
//     strings; trailing whitespace (the reference pads with spaces) is allowed;
//   - duplicate keys anywhere in the header are rejected (the reference
//     rejects a repeated tensor field or "__metadata__", but silently keeps
//     the last of a repeated tensor name or metadata key; we refuse the
//     ambiguity);
//   - a tensor entry holds exactly "dtype" (a known dtype name), "shape"
//     (non-negative integers) and "data_offsets" ([begin, end]); unknown fields
//     are rejected (stricter than the reference, which ignores them);
//   - sorted by offsets, the tensors tile the data section exactly: the first
//     begins at 0, each begins where the previous ended, end >= begin;
//   - prod(shape) * bitsize(dtype) / 8 == end - begin, computed with overflow
//     checks, and the bit count is a whole number of bytes;
//   - the data section ends exactly at the end of the file (no trailing bytes,
//     which rules out polyglot files).
//
// Offsets in the header are relative to the start of the data section, which
// begins right after the header (byte 8+n of the file).
//
// Every error names the file and, where there is one, the tensor and the
// field; the sentinel errors below can be tested with errors.Is.
package safetensors

import (
	"errors"
	"fmt"
)

// MaxHeaderSize is the largest accepted header, in bytes. It is the reference
// implementation's MAX_HEADER_SIZE (safetensors/src/tensor.rs).
const MaxHeaderSize = 100_000_000

// headerLenSize is the size of the little-endian u64 that starts the file.
const headerLenSize = 8

// metadataKey is the reserved header key holding the string-to-string
// metadata map.
const metadataKey = "__metadata__"

// Sentinel errors. Errors returned by this package wrap one of them, with the
// file and the tensor or field that is wrong in the message.
var (
	// ErrHeaderTooSmall: the file is shorter than the 8-byte header length.
	ErrHeaderTooSmall = errors.New("file shorter than the 8-byte header length")
	// ErrHeaderTooLarge: the header length exceeds MaxHeaderSize.
	ErrHeaderTooLarge = errors.New("header larger than 100,000,000 bytes")
	// ErrInvalidHeaderLength: the header runs past the end of the file.
	ErrInvalidHeaderLength = errors.New("header length runs past the end of the file")
	// ErrInvalidHeader: the header is not UTF-8 or not the expected JSON.
	ErrInvalidHeader = errors.New("invalid header")
	// ErrDuplicateKey: a JSON object in the header repeats a key.
	ErrDuplicateKey = errors.New("duplicate key in header")
	// ErrUnknownDType: a dtype name the format does not define.
	ErrUnknownDType = errors.New("unknown dtype")
	// ErrInvalidOffset: data_offsets do not tile the data section.
	ErrInvalidOffset = errors.New("invalid data_offsets")
	// ErrOverflow: the byte size of a tensor overflows 64 bits.
	ErrOverflow = errors.New("tensor size overflows")
	// ErrMisalignedSlice: the tensor's bit count is not a whole number of bytes.
	ErrMisalignedSlice = errors.New("tensor size is not a whole number of bytes")
	// ErrTensorInvalidInfo: data_offsets disagree with dtype and shape.
	ErrTensorInvalidInfo = errors.New("data_offsets do not match dtype and shape")
	// ErrIncompleteBuffer: the data section does not end at the end of file.
	ErrIncompleteBuffer = errors.New("data section does not end at the end of the file")
	// ErrInvalidMetadata: __metadata__ is not a string-to-string object.
	ErrInvalidMetadata = errors.New("__metadata__ must map strings to strings")
	// ErrNotFound: no tensor of that name.
	ErrNotFound = errors.New("no such tensor")
	// ErrDType: the tensor's dtype cannot be converted as asked.
	ErrDType = errors.New("unsupported dtype for conversion")
	// ErrInvalidTensor: a tensor handed to the writer is inconsistent.
	ErrInvalidTensor = errors.New("invalid tensor")
)

// DType is a safetensors element type, spelled as in the header ("F32").
type DType string

// The dtypes of the reference implementation (safetensors/src/tensor.rs,
// enum Dtype), in its order of increasing alignment.
const (
	BOOL        DType = "BOOL"
	F4          DType = "F4"
	F6E2M3      DType = "F6_E2M3"
	F6E3M2      DType = "F6_E3M2"
	U8          DType = "U8"
	I8          DType = "I8"
	F8E5M2      DType = "F8_E5M2"
	F8E4M3      DType = "F8_E4M3"
	F8E8M0      DType = "F8_E8M0"
	F8E4M3FNUZ  DType = "F8_E4M3FNUZ"
	F8E5M2FNUZ  DType = "F8_E5M2FNUZ"
	I16         DType = "I16"
	U16         DType = "U16"
	F16         DType = "F16"
	BF16        DType = "BF16"
	I32         DType = "I32"
	U32         DType = "U32"
	F32         DType = "F32"
	C64         DType = "C64"
	F64         DType = "F64"
	I64         DType = "I64"
	U64         DType = "U64"
	dtypeAbsent DType = ""
)

// dtypeBits is Dtype::bitsize of the reference implementation.
var dtypeBits = map[DType]uint64{
	BOOL: 8, F4: 4, F6E2M3: 6, F6E3M2: 6, U8: 8, I8: 8,
	F8E5M2: 8, F8E4M3: 8, F8E8M0: 8, F8E4M3FNUZ: 8, F8E5M2FNUZ: 8,
	I16: 16, U16: 16, F16: 16, BF16: 16,
	I32: 32, U32: 32, F32: 32,
	C64: 64, F64: 64, I64: 64, U64: 64,
}

// Known reports whether d is a dtype of the format.
func (d DType) Known() bool {
	_, ok := dtypeBits[d]
	return ok
}

// BitSize is the size of one element in bits (4 for F4, 6 for the F6 types).
// It panics on an unknown dtype, which is a programmer error: parsed files
// only hold known dtypes.
func (d DType) BitSize() int {
	b, ok := dtypeBits[d]
	if !ok {
		panic(fmt.Sprintf("safetensors: unknown dtype %q", string(d)))
	}
	return int(b)
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	DType DType
	Shape []int
	// Begin and End are the data_offsets, relative to the start of the data
	// section (the byte after the header).
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar, shape []).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NamedTensor is one tensor handed to Write or Marshal: raw little-endian
// bytes of the given dtype, len(Data) == prod(Shape)*BitSize/8.
type NamedTensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}
