package torchzip

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The unpickler is a restricted Python pickle virtual machine: it knows the
// opcodes and the globals that torch.save uses for a state dict of tensors
// (protocols 2 to 5; torch writes protocol 2) and refuses everything else
// with an error naming the opcode or the global and its offset. It never
// calls anything: the few allowed globals are recognised by name and
// interpreted here. The opcodes are those of CPython's Lib/pickletools.py.

// Limits on what one pickle may build; a state dict of a few thousand
// tensors needs a small fraction of each.
const (
	maxStack  = 1 << 16 // values on the stack (MARKs included)
	maxMemo   = 1 << 20 // memo entries
	maxString = 1 << 20 // bytes of one string (tensor names, locations, keys)
	maxDims   = 16      // dimensions of one tensor
	// maxElements bounds one storage (1 GiB of float32): an adapter is a
	// few megabytes, a whole BERT-large state dict's largest tensor 31M.
	maxElements = 1 << 28
)

// Pickle opcodes (pickletools' names).
const (
	opMark           = '('
	opStop           = '.'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opProto          = 0x80
	opLong1          = 0x8a
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opShortBinString = 'U' // refused, but named in errors
)

// opNames names the opcodes in error messages (those not listed are shown
// by their byte): the accepted ones, then refused ones a hostile or foreign
// pickle is likely to hold.
var opNames = map[byte]string{
	opMark: "MARK", opStop: "STOP", opBinInt: "BININT", opBinInt1: "BININT1", opBinInt2: "BININT2", opNone: "NONE",
	opBinUnicode: "BINUNICODE", opAppend: "APPEND", opBuild: "BUILD", opGlobal: "GLOBAL", opDict: "DICT",
	opEmptyDict: "EMPTY_DICT", opAppends: "APPENDS", opBinGet: "BINGET", opLongBinGet: "LONG_BINGET", opList: "LIST",
	opEmptyList: "EMPTY_LIST", opBinPut: "BINPUT", opLongBinPut: "LONG_BINPUT", opSetItem: "SETITEM", opTuple: "TUPLE",
	opEmptyTuple: "EMPTY_TUPLE", opSetItems: "SETITEMS", opBinPersID: "BINPERSID", opReduce: "REDUCE", opProto: "PROTO",
	opLong1: "LONG1", opNewTrue: "NEWTRUE", opNewFalse: "NEWFALSE", opTuple1: "TUPLE1", opTuple2: "TUPLE2",
	opTuple3: "TUPLE3", opShortBinUni: "SHORT_BINUNICODE", opBinUnicode8: "BINUNICODE8", opStackGlobal: "STACK_GLOBAL",
	opMemoize: "MEMOIZE", opFrame: "FRAME",
	'I': "INT", 'L': "LONG", 'S': "STRING", 'T': "BINSTRING", opShortBinString: "SHORT_BINSTRING",
	'V': "UNICODE", 'F': "FLOAT", 'G': "BINFLOAT", 'P': "PERSID", 'i': "INST", 'o': "OBJ",
	0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	'B': "BINBYTES", 'C': "SHORT_BINBYTES", 0x8e: "BINBYTES8", 0x96: "BYTEARRAY8",
	0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER", 0x8b: "LONG4", 0x8f: "EMPTY_SET",
	0x90: "ADDITEMS", 0x91: "FROZENSET", '0': "POP", '1': "DUP", '2': "POP_MARK", 'g': "GET", 'p': "PUT",
}

// Values on the unpickler's stack.
type (
	markT    struct{}
	tupleT   []any
	listT    []any
	globalT  struct{ module, name string }
	storageT struct {
		dtype DType
		key   string
		numel int64
	}
	// dictT keeps insertion order (a state dict's order is the module's).
	dictT struct {
		keys    []any
		vals    map[any]any
		ordered bool // an OrderedDict (BUILD may set its _metadata)
	}
)

func newDict(ordered bool) *dictT { return &dictT{vals: map[any]any{}, ordered: ordered} }

// set stores k -> v; keys must be hashable values this machine builds.
func (d *dictT) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, nil:
	default:
		return fmt.Errorf("dict key of type %s", typeName(k))
	}
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
	return nil
}

// storageTypes are the storage classes a persistent id may name, by the
// dtype of their elements.
var storageTypes = map[string]DType{
	"FloatStorage":    F32,
	"HalfStorage":     F16,
	"BFloat16Storage": BF16,
	"DoubleStorage":   F64,
}

// allowedGlobals are the only globals a pickle may name.
func allowedGlobal(module, name string) bool {
	switch module + "." + name {
	case "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter":
		return true
	}
	_, ok := storageTypes[name]
	return ok && module == "torch"
}

// storageLoader returns the float32 values of the storage with the given
// key, dtype and element count (it checks them against the archive).
type storageLoader func(key string, dtype DType, numel int64) ([]float32, error)

// unpickler runs one pickle.
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	memo  map[int64]any
	load  storageLoader
	cache map[string][]float32
}

// unpickle runs the pickle in data and returns the value STOP finds.
func unpickle(data []byte, load storageLoader) (any, error) {
	u := &unpickler{data: data, memo: map[int64]any{}, load: load, cache: map[string][]float32{}}
	for {
		if u.pos >= len(u.data) {
			return nil, fmt.Errorf("pickle ends at byte %d without STOP", u.pos)
		}
		at := u.pos
		op := u.data[u.pos]
		u.pos++
		done, err := u.step(op)
		if err != nil {
			return nil, fmt.Errorf("pickle byte %d (opcode %s): %w", at, opName(op), err)
		}
		if done {
			if len(u.stack) != 1 {
				return nil, fmt.Errorf("pickle byte %d: STOP with %d values on the stack, want 1", at, len(u.stack))
			}
			if _, ok := u.stack[0].(markT); ok {
				return nil, fmt.Errorf("pickle byte %d: STOP on a MARK", at)
			}
			return u.stack[0], nil
		}
		if len(u.stack) > maxStack {
			return nil, fmt.Errorf("pickle byte %d: more than %d values on the stack", at, maxStack)
		}
	}
}

func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", op)
}

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, fmt.Errorf("needs %d bytes, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) readLine() (string, error) {
	for i := u.pos; i < len(u.data) && i-u.pos <= 256; i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	return "", fmt.Errorf("no newline within 256 bytes")
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	if _, ok := v.(markT); ok {
		return nil, fmt.Errorf("a MARK where a value was expected")
	}
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	if _, ok := v.(markT); ok {
		return nil, fmt.Errorf("a MARK where a value was expected")
	}
	return v, nil
}

// popMark pops the values above the topmost MARK, and the MARK.
func (u *unpickler) popMark() ([]any, error) {
	for i := len(u.stack) - 1; i >= 0; i-- {
		if _, ok := u.stack[i].(markT); ok {
			items := append([]any(nil), u.stack[i+1:]...)
			u.stack = u.stack[:i]
			return items, nil
		}
	}
	return nil, fmt.Errorf("no MARK on the stack")
}

func (u *unpickler) popN(n int) ([]any, error) {
	out := make([]any, n)
	for i := n - 1; i >= 0; i-- {
		v, err := u.pop()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (u *unpickler) memoPut(idx int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[idx]; !ok && len(u.memo) >= maxMemo {
		return fmt.Errorf("more than %d memo entries", maxMemo)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) memoGet(idx int64) error {
	v, ok := u.memo[idx]
	if !ok {
		return fmt.Errorf("memo entry %d not set", idx)
	}
	u.push(v)
	return nil
}

func (u *unpickler) pushString(n uint64) error {
	if n > maxString {
		return fmt.Errorf("string of %d bytes (the limit is %d)", n, maxString)
	}
	b, err := u.read(int(n))
	if err != nil {
		return err
	}
	u.push(string(b))
	return nil
}

// step runs one opcode; it reports STOP.
func (u *unpickler) step(op byte) (bool, error) {
	switch op {
	case opProto:
		v, err := u.readUint(1)
		if err != nil {
			return false, err
		}
		if v < 2 || v > 5 {
			return false, fmt.Errorf("protocol %d (torch.save writes 2; 2..5 are read)", v)
		}
	case opFrame:
		if _, err := u.readUint(8); err != nil {
			return false, err
		}
	case opStop:
		return true, nil
	case opMark:
		u.push(markT{})
	case opEmptyDict:
		u.push(newDict(false))
	case opEmptyList:
		u.push(&listT{})
	case opEmptyTuple:
		u.push(tupleT{})
	case opNone:
		u.push(nil)
	case opNewTrue:
		u.push(true)
	case opNewFalse:
		u.push(false)
	case opBinInt:
		v, err := u.readUint(4)
		if err != nil {
			return false, err
		}
		u.push(int64(int32(uint32(v))))
	case opBinInt1:
		v, err := u.readUint(1)
		if err != nil {
			return false, err
		}
		u.push(int64(v))
	case opBinInt2:
		v, err := u.readUint(2)
		if err != nil {
			return false, err
		}
		u.push(int64(v))
	case opLong1:
		return false, u.long1()
	case opBinUnicode:
		n, err := u.readUint(4)
		if err != nil {
			return false, err
		}
		return false, u.pushString(n)
	case opShortBinUni:
		n, err := u.readUint(1)
		if err != nil {
			return false, err
		}
		return false, u.pushString(n)
	case opBinUnicode8:
		n, err := u.readUint(8)
		if err != nil {
			return false, err
		}
		return false, u.pushString(n)
	case opBinPut:
		idx, err := u.readUint(1)
		if err != nil {
			return false, err
		}
		return false, u.memoPut(int64(idx))
	case opLongBinPut:
		idx, err := u.readUint(4)
		if err != nil {
			return false, err
		}
		return false, u.memoPut(int64(idx))
	case opMemoize:
		return false, u.memoPut(int64(len(u.memo)))
	case opBinGet:
		idx, err := u.readUint(1)
		if err != nil {
			return false, err
		}
		return false, u.memoGet(int64(idx))
	case opLongBinGet:
		idx, err := u.readUint(4)
		if err != nil {
			return false, err
		}
		return false, u.memoGet(int64(idx))
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		u.push(tupleT(items))
	case opTuple1, opTuple2, opTuple3:
		items, err := u.popN(int(op-opTuple1) + 1)
		if err != nil {
			return false, err
		}
		u.push(tupleT(items))
	case opList:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		l := listT(items)
		u.push(&l)
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		d := newDict(false)
		if err := setItems(d, items); err != nil {
			return false, err
		}
		u.push(d)
	case opAppend, opAppends:
		return false, u.appends(op == opAppends)
	case opSetItem, opSetItems:
		return false, u.setItems(op == opSetItems)
	case opGlobal:
		module, err := u.readLine()
		if err != nil {
			return false, err
		}
		name, err := u.readLine()
		if err != nil {
			return false, err
		}
		return false, u.global(module, name)
	case opStackGlobal:
		vs, err := u.popN(2)
		if err != nil {
			return false, err
		}
		module, ok1 := vs[0].(string)
		name, ok2 := vs[1].(string)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("module and name are %s and %s, want strings", typeName(vs[0]), typeName(vs[1]))
		}
		return false, u.global(module, name)
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return false, err
		}
		s, err := persistentLoad(pid)
		if err != nil {
			return false, err
		}
		u.push(s)
	case opReduce:
		vs, err := u.popN(2)
		if err != nil {
			return false, err
		}
		v, err := u.reduce(vs[0], vs[1])
		if err != nil {
			return false, err
		}
		u.push(v)
	case opBuild:
		vs, err := u.popN(2)
		if err != nil {
			return false, err
		}
		// state_dict() is an OrderedDict with a _metadata attribute
		// (per-module versions), restored by BUILD: not needed here.
		d, ok := vs[0].(*dictT)
		if _, isDict := vs[1].(*dictT); !ok || !d.ordered || !isDict {
			return false, fmt.Errorf("BUILD on %s with %s: only an OrderedDict's attributes are accepted", typeName(vs[0]), typeName(vs[1]))
		}
		u.push(d)
	default:
		return false, fmt.Errorf("not allowed: a state dict of tensors does not need it")
	}
	return false, nil
}

// long1 reads a LONG1 integer (little-endian two's complement, up to 8 bytes).
func (u *unpickler) long1() error {
	n, err := u.readUint(1)
	if err != nil {
		return err
	}
	if n > 8 {
		return fmt.Errorf("integer of %d bytes (up to 8 are read)", n)
	}
	b, err := u.read(int(n))
	if err != nil {
		return err
	}
	var v uint64
	for i := int(n) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if n > 0 && n < 8 && b[n-1]&0x80 != 0 {
		v |= ^uint64(0) << (8 * n) // sign-extend
	}
	u.push(int64(v))
	return nil
}

func (u *unpickler) appends(many bool) error {
	var items []any
	var err error
	if many {
		items, err = u.popMark()
	} else {
		var v any
		v, err = u.pop()
		items = []any{v}
	}
	if err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	l, ok := t.(*listT)
	if !ok {
		return fmt.Errorf("append to %s, want a list", typeName(t))
	}
	*l = append(*l, items...)
	return nil
}

func (u *unpickler) setItems(many bool) error {
	var items []any
	var err error
	if many {
		items, err = u.popMark()
	} else {
		items, err = u.popN(2)
	}
	if err != nil {
		return err
	}
	t, err := u.top()
	if err != nil {
		return err
	}
	d, ok := t.(*dictT)
	if !ok {
		return fmt.Errorf("set item on %s, want a dict", typeName(t))
	}
	return setItems(d, items)
}

func setItems(d *dictT, items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("%d values for key-value pairs", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpickler) global(module, name string) error {
	if !allowedGlobal(module, name) {
		return fmt.Errorf("global %s.%s is not allowed: a state dict of tensors needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch.{Float,Half,BFloat16,Double}Storage",
			quoteIfOdd(module), quoteIfOdd(name))
	}
	u.push(globalT{module, name})
	return nil
}

// quoteIfOdd quotes a name that holds anything but identifier characters,
// so an error message shows hostile names verbatim but harmlessly.
func quoteIfOdd(s string) string {
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.Quote(s)
		}
	}
	return s
}

// persistentLoad resolves torch's persistent id of a storage:
// ('storage', <storage class>, key, location, numel).
func persistentLoad(pid any) (storageT, error) {
	t, ok := pid.(tupleT)
	if !ok || len(t) != 5 {
		return storageT{}, fmt.Errorf("persistent id %s, want ('storage', class, key, location, numel)", typeName(pid))
	}
	if tag, _ := t[0].(string); tag != "storage" {
		return storageT{}, fmt.Errorf("persistent id tag %v, want 'storage'", t[0])
	}
	g, ok := t[1].(globalT)
	dtype, known := storageTypes[g.name]
	if !ok || !known {
		return storageT{}, fmt.Errorf("storage class %s, want a float storage", typeName(t[1]))
	}
	key, ok1 := t[2].(string)
	_, ok2 := t[3].(string)
	numel, ok3 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || numel < 0 || key == "" || strings.ContainsAny(key, "/\\") {
		return storageT{}, fmt.Errorf("persistent id (%v, %v, %v): want a key without slashes, a location string and a count >= 0", t[2], t[3], t[4])
	}
	return storageT{dtype: dtype, key: key, numel: numel}, nil
}

// reduce applies an allowed global to its arguments.
func (u *unpickler) reduce(fn, args any) (any, error) {
	g, ok := fn.(globalT)
	if !ok {
		return nil, fmt.Errorf("REDUCE on %s, want an allowed global", typeName(fn))
	}
	a, ok := args.(tupleT)
	if !ok {
		return nil, fmt.Errorf("REDUCE arguments are %s, want a tuple", typeName(args))
	}
	switch g.module + "." + g.name {
	case "collections.OrderedDict":
		if len(a) != 0 {
			return nil, fmt.Errorf("OrderedDict with %d arguments, want none", len(a))
		}
		return newDict(true), nil
	case "torch._utils._rebuild_tensor_v2":
		return u.rebuildTensor(a)
	case "torch._utils._rebuild_parameter":
		if len(a) != 3 {
			return nil, fmt.Errorf("_rebuild_parameter with %d arguments, want 3", len(a))
		}
		t, ok := a[0].(*Tensor)
		if !ok {
			return nil, fmt.Errorf("_rebuild_parameter of %s, want a tensor", typeName(a[0]))
		}
		return t, nil
	}
	return nil, fmt.Errorf("%s.%s cannot be called", g.module, g.name)
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]): it gathers the
// tensor's elements from the storage in row-major order, checking every
// index against the storage.
func (u *unpickler) rebuildTensor(a tupleT) (*Tensor, error) {
	if len(a) != 6 && len(a) != 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments, want 6 or 7", len(a))
	}
	st, ok := a[0].(storageT)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2 storage is %s", typeName(a[0]))
	}
	off, ok := a[1].(int64)
	if !ok || off < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 storage offset %v", a[1])
	}
	size, err := ints(a[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := ints(a[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", size, stride)
	}
	if _, ok := a[4].(bool); !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2 requires_grad is %s", typeName(a[4]))
	}
	// Element count and the furthest element, both bounded by the storage,
	// itself at most maxElements (2²⁸), so no product here can overflow. A
	// tensor with more elements than its storage (a stride-0 expansion) is
	// refused: it would let a few bytes claim gigabytes.
	if st.numel > maxElements || off > st.numel {
		return nil, fmt.Errorf("storage of %d elements at offset %d (at most %d elements are read)", st.numel, off, maxElements)
	}
	n, last := int64(1), off
	for i, d := range size {
		if d == 0 {
			n = 0
			break
		}
		if n > st.numel/d || stride[i] > st.numel {
			return nil, fmt.Errorf("size %v, stride %v: more elements than the storage's %d", size, stride, st.numel)
		}
		n *= d
		last += (d - 1) * stride[i]
	}
	if n > 0 && last >= st.numel {
		return nil, fmt.Errorf("size %v, stride %v at offset %d reach element %d of a storage of %d", size, stride, off, last, st.numel)
	}
	src, ok := u.cache[st.key]
	if !ok {
		if src, err = u.load(st.key, st.dtype, st.numel); err != nil {
			return nil, err
		}
		u.cache[st.key] = src
	}
	if int64(len(src)) != st.numel {
		return nil, fmt.Errorf("storage %s has %d elements, the pickle says %d", st.key, len(src), st.numel)
	}
	t := &Tensor{Shape: make([]int, len(size)), Data: make([]float32, n)}
	for i, d := range size {
		t.Shape[i] = int(d)
	}
	idx := make([]int64, len(size))
	for k := int64(0); k < n; k++ {
		p := off
		for i := range idx {
			p += idx[i] * stride[i]
		}
		t.Data[k] = src[p]
		for i := len(idx) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < size[i] {
				break
			}
			idx[i] = 0
		}
	}
	return t, nil
}

// ints reads a tuple of non-negative integers (a size or a stride).
func ints(v any, what string) ([]int64, error) {
	t, ok := v.(tupleT)
	if !ok || len(t) > maxDims {
		return nil, fmt.Errorf("tensor %s is %s, want a tuple of at most %d integers", what, typeName(v), maxDims)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 || n > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %s %v: want integers in [0, 2³¹)", what, []any(t))
		}
		out[i] = n
	}
	return out, nil
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case bool:
		return "a bool"
	case tupleT:
		return "a tuple"
	case *listT:
		return "a list"
	case *dictT:
		if v.ordered {
			return "an OrderedDict"
		}
		return "a dict"
	case globalT:
		return "global " + v.module + "." + v.name
	case storageT:
		return "a storage"
	case *Tensor:
		return "a tensor"
	case markT:
		return "a MARK"
	}
	return fmt.Sprintf("%T", v)
}

// decode converts n little-endian elements of dtype to float32.
func decode(raw []byte, dtype DType, n int64) []float32 {
	out := make([]float32, n)
	switch dtype {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case F16:
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	}
	return out
}

// halfToFloat converts an IEEE 754 binary16 value exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac·2⁻²⁴
		v := float32(frac) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
