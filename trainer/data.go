package trainer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Example is one row of a dataset.
type Example struct {
	// Text and Pair are the input text(s); Pair is empty for
	// single-sentence tasks.
	Text, Pair string
	// RawLabel is the label as written in the file ("" when the file has
	// none, e.g. a test set).
	RawLabel string
	// Label is the class index (classification) after Encode; -1 before.
	Label int
	// Target is the regression target after Encode.
	Target float32
	// Line is the 1-based line of the row in its file (for JSON Lines and
	// TSV the line; for CSV the line the record starts on).
	Line int
}

// Dataset is the examples of one file.
type Dataset struct {
	// Path is the file the examples came from.
	Path     string
	Examples []Example
	// Skipped counts rows dropped by skip_bad_rows; SkipReasons keeps the
	// first few reasons (file:line: why) for the log.
	Skipped     int
	SkipReasons []string
}

// maxSkipReasons bounds Dataset.SkipReasons.
const maxSkipReasons = 10

// Layout says where the fields of a row are.
type Layout struct {
	// Format is tsv, csv or jsonl.
	Format string
	// Header: TSV/CSV files start with a header row naming the fields.
	Header bool
	// TextField, TextPairField, LabelField name the fields; TextPairField
	// may be empty.
	TextField, TextPairField, LabelField string
	// TextColumn, TextPairColumn, LabelColumn are 0-based columns; -1 means
	// "find the field by name in the header".
	TextColumn, TextPairColumn, LabelColumn int
	// RequireLabel: a row without a label is bad (train and validation);
	// test sets may lack labels.
	RequireLabel bool
	// SkipBadRows: bad rows are counted and skipped instead of failing.
	SkipBadRows bool
	// Max stops after this many good rows (0 = all).
	Max int
}

// FormatOf returns the dataset format an extension names: .jsonl (and
// .ndjson) for JSON Lines, .tsv and .csv; ok is false for anything else.
func FormatOf(path string) (format string, ok bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson":
		return "jsonl", true
	case ".tsv":
		return "tsv", true
	case ".csv":
		return "csv", true
	}
	return "", false
}

// LayoutFor builds the Layout of c's data files; Format is data.format,
// which may be empty (each file's extension decides: see LayoutForFile).
func LayoutFor(c *Config) Layout {
	col := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	d := c.Data
	return Layout{
		Format: d.Format, Header: c.HeaderRow(),
		TextField: d.TextField, TextPairField: d.TextPairField, LabelField: d.LabelField,
		TextColumn: col(d.TextColumn), TextPairColumn: col(d.TextPairColumn), LabelColumn: col(d.LabelColumn),
		RequireLabel: true, SkipBadRows: d.SkipBadRows,
	}
}

// LayoutForFile is LayoutFor with Format resolved for the file at path.
func LayoutForFile(c *Config, path string) (Layout, error) {
	l := LayoutFor(c)
	f, err := c.FileFormat(path)
	if err != nil {
		return l, err
	}
	l.Format = f
	return l, nil
}

// badRow is a malformed row: file, line and what is wrong.
type badRow struct {
	path string
	line int
	why  string
}

// Error formats the row as file:line: reason.
func (e *badRow) Error() string { return fmt.Sprintf("%s:%d: %s", e.path, e.line, e.why) }

// ReadFile reads a dataset file laid out as l.
func ReadFile(path string, l Layout) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	return Read(path, f, l)
}

// Read reads a dataset from r; path names it in errors.
func Read(path string, r io.Reader, l Layout) (*Dataset, error) {
	ds := &Dataset{Path: path}
	add := func(ex Example, bad string) error {
		if bad == "" {
			bad = checkExample(&ex, l)
		}
		if bad != "" {
			e := &badRow{path, ex.Line, bad}
			if !l.SkipBadRows {
				return fmt.Errorf("dataset %w (set data.skip_bad_rows = true to skip such rows)", e)
			}
			ds.Skipped++
			if len(ds.SkipReasons) < maxSkipReasons {
				ds.SkipReasons = append(ds.SkipReasons, e.Error())
			}
			return nil
		}
		ex.Label = -1
		ds.Examples = append(ds.Examples, ex)
		return nil
	}
	full := func() bool { return l.Max > 0 && len(ds.Examples) >= l.Max }
	var err error
	switch l.Format {
	case "jsonl":
		err = readJSONL(path, r, l, add, full)
	case "tsv":
		err = readTSV(path, r, l, add, full)
	case "csv":
		err = readCSV(path, r, l, add, full)
	case "":
		f, ok := FormatOf(path)
		if !ok {
			return nil, fmt.Errorf("dataset %s: no format given and the extension is none of .jsonl, .tsv, .csv", path)
		}
		l.Format = f
		return Read(path, r, l)
	default:
		err = fmt.Errorf("dataset %s: unknown format %q (want tsv, csv or jsonl)", path, l.Format)
	}
	if err != nil {
		return nil, err
	}
	if len(ds.Examples) == 0 {
		return nil, fmt.Errorf("dataset %s: no usable rows (%d skipped)", path, ds.Skipped)
	}
	return ds, nil
}

func checkExample(ex *Example, l Layout) string {
	for _, s := range []struct{ name, v string }{{"text", ex.Text}, {"text pair", ex.Pair}, {"label", ex.RawLabel}} {
		if !utf8.ValidString(s.v) {
			return s.name + " is not valid UTF-8"
		}
	}
	if strings.TrimSpace(ex.Text) == "" {
		return "empty text"
	}
	if l.TextPairField != "" || l.TextPairColumn >= 0 {
		if strings.TrimSpace(ex.Pair) == "" {
			return "empty text pair"
		}
	}
	if l.RequireLabel && strings.TrimSpace(ex.RawLabel) == "" {
		return "empty label"
	}
	ex.RawLabel = strings.TrimSpace(ex.RawLabel)
	return ""
}

type addFunc func(Example, string) error

func readJSONL(path string, r io.Reader, l Layout, add addFunc, full func() bool) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; !full(); line++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("dataset %s:%d: %w", path, line, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		ex := Example{Line: line}
		if !utf8.Valid(raw) {
			if e := add(ex, "not valid UTF-8"); e != nil {
				return e
			}
			continue
		}
		var obj map[string]json.RawMessage
		if e := json.Unmarshal(raw, &obj); e != nil {
			if e := add(ex, "not a JSON object: "+e.Error()); e != nil {
				return e
			}
			continue
		}
		bad := ""
		get := func(field string, required bool, dst *string) {
			if bad != "" || field == "" {
				return
			}
			v, ok := obj[field]
			if !ok {
				if required {
					bad = fmt.Sprintf("missing field %q", field)
				}
				return
			}
			s, err := jsonScalar(v)
			if err != nil {
				bad = fmt.Sprintf("field %q: %v", field, err)
			}
			*dst = s
		}
		get(l.TextField, true, &ex.Text)
		get(l.TextPairField, true, &ex.Pair)
		get(l.LabelField, l.RequireLabel, &ex.RawLabel)
		if e := add(ex, bad); e != nil {
			return e
		}
	}
	return nil
}

// jsonScalar returns a JSON string as is and a number or boolean in its
// JSON spelling ("1", "0.5", "true"), so labels may be written either way.
func jsonScalar(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		return n.String(), nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err == nil {
		return strconv.FormatBool(b), nil
	}
	return "", errors.New("want a string, number or boolean")
}

// columns resolves the column indices of l against a header row.
func columns(path string, l Layout, header []string) (text, pair, label int, err error) {
	find := func(col int, field, key string, required bool) (int, error) {
		if col >= 0 {
			return col, nil
		}
		if field == "" {
			return -1, nil
		}
		if header == nil {
			return -1, fmt.Errorf("dataset %s: no header row, so data.%s_column is needed", path, key)
		}
		for i, h := range header {
			if strings.TrimSpace(h) == field {
				return i, nil
			}
		}
		if !required {
			return -1, nil
		}
		return -1, fmt.Errorf("dataset %s:1: header has no column %q (data.%s_field); columns are %q", path, field, key, header)
	}
	if text, err = find(l.TextColumn, l.TextField, "text", true); err != nil {
		return
	}
	if pair, err = find(l.TextPairColumn, l.TextPairField, "text_pair", true); err != nil {
		return
	}
	label, err = find(l.LabelColumn, l.LabelField, "label", l.RequireLabel)
	return
}

func rowExample(rec []string, line, text, pair, label int) (Example, string) {
	ex := Example{Line: line}
	get := func(col int, what string, dst *string) string {
		if col < 0 {
			return ""
		}
		if col >= len(rec) {
			return fmt.Sprintf("missing field: %s is column %d, the row has %d", what, col, len(rec))
		}
		*dst = rec[col]
		return ""
	}
	for _, g := range []struct {
		col  int
		what string
		dst  *string
	}{{text, "text", &ex.Text}, {pair, "text pair", &ex.Pair}, {label, "label", &ex.RawLabel}} {
		if bad := get(g.col, g.what, g.dst); bad != "" {
			return ex, bad
		}
	}
	return ex, ""
}

// readTSV reads tab-separated rows without any quoting (the GLUE files are
// written that way: quotes are part of the text).
func readTSV(path string, r io.Reader, l Layout, add addFunc, full func() bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	text, pair, label := -1, -1, -1
	line := 0
	if !l.Header {
		var err error
		if text, pair, label, err = columns(path, l, nil); err != nil {
			return err
		}
	}
	for !full() && sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if line == 1 && l.Header {
			var err error
			if text, pair, label, err = columns(path, l, strings.Split(s, "\t")); err != nil {
				return err
			}
			continue
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		ex, bad := rowExample(strings.Split(s, "\t"), line, text, pair, label)
		if err := add(ex, bad); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("dataset %s:%d: %w", path, line+1, err)
	}
	return nil
}

func readCSV(path string, r io.Reader, l Layout, add addFunc, full func() bool) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	text, pair, label := -1, -1, -1
	first := true
	if !l.Header {
		var err error
		if text, pair, label, err = columns(path, l, nil); err != nil {
			return err
		}
		first = false
	}
	for !full() {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if e := add(Example{Line: pe.StartLine}, "malformed CSV: "+pe.Err.Error()); e != nil {
					return e
				}
				continue
			}
			return fmt.Errorf("dataset %s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if text, pair, label, err = columns(path, l, rec); err != nil {
				return err
			}
			continue
		}
		ex, bad := rowExample(rec, line, text, pair, label)
		if err := add(ex, bad); err != nil {
			return err
		}
	}
	return nil
}

// Subsample keeps n examples drawn at random (seeded, so the same seed keeps
// the same rows) in their file order; n <= 0 or n >= len keeps all. Files are
// often sorted by label, so taking the first n would not do.
func (ds *Dataset) Subsample(n int, seed uint64) {
	if n <= 0 || n >= len(ds.Examples) {
		return
	}
	g := rand.New(rand.NewPCG(seed, pcgStream))
	pick := g.Perm(len(ds.Examples))[:n]
	sort.Ints(pick)
	out := make([]Example, n)
	for i, j := range pick {
		out[i] = ds.Examples[j]
	}
	ds.Examples = out
}

// Labels is a label vocabulary: index <-> label string.
type Labels struct {
	Names []string
	index map[string]int
}

// NewLabels makes a vocabulary with the given order.
func NewLabels(names []string) *Labels {
	l := &Labels{Names: append([]string(nil), names...), index: map[string]int{}}
	for i, n := range l.Names {
		l.index[n] = i
	}
	return l
}

// LabelsFromData returns the sorted distinct labels of ds. Labels that all
// parse as numbers sort numerically ("2" before "10"), others as strings.
func LabelsFromData(ds *Dataset) *Labels {
	seen := map[string]bool{}
	var names []string
	for _, ex := range ds.Examples {
		if !seen[ex.RawLabel] {
			seen[ex.RawLabel] = true
			names = append(names, ex.RawLabel)
		}
	}
	numeric := true
	vals := map[string]float64{}
	for _, n := range names {
		v, err := strconv.ParseFloat(n, 64)
		if err != nil {
			numeric = false
			break
		}
		vals[n] = v
	}
	sort.Slice(names, func(i, j int) bool {
		if numeric && vals[names[i]] != vals[names[j]] {
			return vals[names[i]] < vals[names[j]]
		}
		return names[i] < names[j]
	})
	return NewLabels(names)
}

// Index returns the class index of name.
func (l *Labels) Index(name string) (int, bool) {
	i, ok := l.index[name]
	return i, ok
}

// Len is the number of labels.
func (l *Labels) Len() int { return len(l.Names) }

// Encode sets Label (classification, labels != nil) or Target (regression,
// labels == nil) of every example with a label. An unknown label or a
// non-numeric regression target is an error naming file and line, or, with
// skip, drops the row and counts it. Rows without a label (test sets) keep
// Label -1.
func (ds *Dataset) Encode(labels *Labels, skip bool) error {
	kept := ds.Examples[:0]
	for _, ex := range ds.Examples {
		bad := ""
		if ex.RawLabel != "" {
			if labels != nil {
				i, ok := labels.Index(ex.RawLabel)
				if !ok {
					bad = fmt.Sprintf("unknown label %q (labels are %q)", ex.RawLabel, labels.Names)
				}
				ex.Label = i
			} else {
				v, err := strconv.ParseFloat(ex.RawLabel, 32)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					bad = fmt.Sprintf("regression target %q is not a finite number", ex.RawLabel)
				}
				ex.Target = float32(v)
			}
		}
		if bad != "" {
			e := &badRow{ds.Path, ex.Line, bad}
			if !skip {
				return fmt.Errorf("dataset %w", e)
			}
			ds.Skipped++
			if len(ds.SkipReasons) < maxSkipReasons {
				ds.SkipReasons = append(ds.SkipReasons, e.Error())
			}
			continue
		}
		kept = append(kept, ex)
	}
	ds.Examples = kept
	if len(kept) == 0 {
		return fmt.Errorf("dataset %s: no usable rows after label encoding (%d skipped)", ds.Path, ds.Skipped)
	}
	return nil
}

// Splits are the datasets of a run.
type Splits struct {
	Train, Validation, Test *Dataset
	// Labels is the label vocabulary (nil for regression).
	Labels *Labels
}

// LoadSplits reads the files c names, builds the label vocabulary (data.labels,
// or the sorted distinct labels of the training file) and encodes every
// split. Test rows may lack labels.
func LoadSplits(c *Config) (*Splits, error) {
	var s Splits
	read := func(path string, requireLabel bool) (*Dataset, error) {
		l, err := LayoutForFile(c, path)
		if err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
		l.RequireLabel = requireLabel
		return ReadFile(path, l)
	}
	var err error
	if s.Train, err = read(c.Data.Train, true); err != nil {
		return nil, err
	}
	s.Train.Subsample(c.Data.MaxTrainExamples, c.SampleSeed())
	if c.Data.Validation != "" {
		if s.Validation, err = read(c.Data.Validation, true); err != nil {
			return nil, err
		}
		s.Validation.Subsample(c.Data.MaxEvalExamples, c.SampleSeed()+1)
	}
	if c.Data.Test != "" {
		if s.Test, err = read(c.Data.Test, false); err != nil {
			return nil, err
		}
		s.Test.Subsample(c.Data.MaxEvalExamples, c.SampleSeed()+2)
	}
	if c.Data.Task == TaskClassification {
		if len(c.Data.Labels) > 0 {
			s.Labels = NewLabels(c.Data.Labels)
		} else {
			s.Labels = LabelsFromData(s.Train)
		}
		if s.Labels.Len() < 2 {
			return nil, fmt.Errorf("dataset %s: only %d distinct label(s) %q; a classifier needs 2", s.Train.Path, s.Labels.Len(), s.Labels.Names)
		}
	}
	for _, ds := range []*Dataset{s.Train, s.Validation, s.Test} {
		if ds != nil {
			if err := ds.Encode(s.Labels, c.Data.SkipBadRows); err != nil {
				return nil, err
			}
		}
	}
	return &s, nil
}
