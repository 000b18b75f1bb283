package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func jsonlLayout() Layout {
	return Layout{Format: "jsonl", TextField: "text", LabelField: "label", TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, RequireLabel: true}
}

func TestReadJSONL(t *testing.T) {
	in := `{"text": "free money", "label": "spam"}

{"text": "hi bob", "label": "ham", "extra": 3}
{"text": "n", "label": 1}
`
	ds, err := Read("x.jsonl", strings.NewReader(in), jsonlLayout())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 3 || ds.Examples[1].Text != "hi bob" || ds.Examples[1].Line != 3 || ds.Examples[2].RawLabel != "1" {
		t.Errorf("%+v", ds.Examples)
	}
}

// Each kind of bad row is an error naming file and line, or skipped and
// counted with skip_bad_rows.
func TestBadRows(t *testing.T) {
	for _, tc := range []struct {
		name, row, want string
	}{
		{"missing field", `{"text": "a"}`, `missing field "label"`},
		{"empty text", `{"text": "  ", "label": "ham"}`, "empty text"},
		{"invalid utf8", "{\"text\": \"a\xff\", \"label\": \"ham\"}", "not valid UTF-8"},
		{"not json", `{"text": "a", `, "not a JSON object"},
		{"bad type", `{"text": ["a"], "label": "ham"}`, `field "text"`},
	} {
		in := `{"text": "ok", "label": "ham"}` + "\n" + tc.row + "\n" + `{"text": "ok2", "label": "spam"}` + "\n"
		_, err := Read("d.jsonl", strings.NewReader(in), jsonlLayout())
		if err == nil || !strings.Contains(err.Error(), "d.jsonl:2: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v", tc.name, err)
		}
		l := jsonlLayout()
		l.SkipBadRows = true
		ds, err := Read("d.jsonl", strings.NewReader(in), l)
		if err != nil || len(ds.Examples) != 2 || ds.Skipped != 1 || !strings.Contains(ds.SkipReasons[0], "d.jsonl:2") {
			t.Errorf("%s skip: %v %+v", tc.name, err, ds)
		}
	}
	// Unknown label at encoding time.
	ds, _ := Read("d.jsonl", strings.NewReader(`{"text":"a","label":"ham"}`+"\n"+`{"text":"b","label":"eggs"}`), jsonlLayout())
	err := ds.Encode(NewLabels([]string{"ham", "spam"}), false)
	if err == nil || !strings.Contains(err.Error(), `d.jsonl:2: unknown label "eggs"`) {
		t.Errorf("unknown label: %v", err)
	}
	if err := ds.Encode(NewLabels([]string{"ham", "spam"}), true); err != nil || ds.Skipped != 1 || len(ds.Examples) != 1 || ds.Examples[0].Label != 0 {
		t.Errorf("skip unknown label: %v %+v", err, ds)
	}
}

func TestReadCSV(t *testing.T) {
	in := "id,label,sentence\n1,pos,\"hello, world\"\n2,neg,\"multi\nline\"\n3,pos\n"
	l := Layout{Format: "csv", Header: true, TextField: "sentence", LabelField: "label", TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, RequireLabel: true, SkipBadRows: true}
	ds, err := Read("c.csv", strings.NewReader(in), l)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 2 || ds.Examples[0].Text != "hello, world" || ds.Examples[1].Text != "multi\nline" || ds.Examples[1].Line != 3 {
		t.Errorf("%+v", ds.Examples)
	}
	if ds.Skipped != 1 || !strings.Contains(ds.SkipReasons[0], "c.csv:5: missing field") {
		t.Errorf("skipped %d %v", ds.Skipped, ds.SkipReasons)
	}
	l.TextField = "text"
	if _, err := Read("c.csv", strings.NewReader(in), l); err == nil || !strings.Contains(err.Error(), `no column "text"`) {
		t.Errorf("missing header column: %v", err)
	}
}

// GLUE layouts, on rows copied from the real files' formats.
func TestGLUEPresets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		preset, file string
		text, pair   string
		label        string
	}{
		{"cola", "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\ngj04\t0\t*\tThey drank the pub.\n",
			"Our friends won't buy this analysis, let alone the next one we propose.", "", "1"},
		{"sst-2", "sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit \t0\n", "hide new secretions from the parental units ", "", "0"},
		{"mrpc", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \" the witness \" .\n0\t1\t2\ta\tb\n",
			"Amrozi accused his brother .", "Referring to him as only \" the witness \" .", "1"},
		{"qqp", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is enough?\t0\n1\t2\t3\ta\tb\t1\n",
			"How is the life of a math student?", "Which level of prepration is enough?", "0"},
		{"sts-b", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n",
			"A plane is taking off.", "An air plane is taking off.", "5.000"},
		{"mnli", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n0\t31193\t31193n\tgovernment\t( ( x ) )\t( y )\t(ROOT x)\t(ROOT y)\tConceptually cream skimming has two basic dimensions.\tProduct and geography are what make cream skimming work.\tneutral\tneutral\n1\t1\t1n\tg\tx\ty\tx\ty\ta\tb\tentailment\tentailment\n1\t1\t1n\tg\tx\ty\tx\ty\ta\tb\tcontradiction\tcontradiction\n",
			"Conceptually cream skimming has two basic dimensions.", "Product and geography are what make cream skimming work.", "neutral"},
		{"qnli", "index\tquestion\tsentence\tlabel\n0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it, ...\tnot_entailment\n1\ta\tb\tentailment\n",
			"When did the third Digimon series begin?", "Unlike the two seasons before it, ...", "not_entailment"},
		{"rte", "index\tsentence1\tsentence2\tlabel\n0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n1\ta\tb\tentailment\n",
			"No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons of Mass Destruction Found in Iraq.", "not_entailment"},
		{"wnli", "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin through a carrot.\tThe carrot has a hole.\t1\n1\ta\tb\t0\n",
			"I stuck a pin through a carrot.", "The carrot has a hole.", "1"},
	}
	for _, tc := range cases {
		p := write(tc.preset+".tsv", tc.file)
		c, err := LoadConfig("", []string{"model.dir=m", "data.preset=" + tc.preset, "data.train=" + p})
		if err != nil {
			t.Fatalf("%s: %v", tc.preset, err)
		}
		s, err := LoadSplits(c)
		if err != nil {
			t.Fatalf("%s: %v", tc.preset, err)
		}
		ex := s.Train.Examples[0]
		if ex.Text != tc.text || ex.Pair != tc.pair || ex.RawLabel != tc.label {
			t.Errorf("%s: got %q / %q / %q", tc.preset, ex.Text, ex.Pair, ex.RawLabel)
		}
		if tc.preset == "sts-b" {
			if s.Labels != nil || ex.Target != 5 || c.Data.Task != TaskRegression {
				t.Errorf("sts-b: regression target %v labels %v", ex.Target, s.Labels)
			}
		} else if s.Labels.Names[ex.Label] != tc.label {
			t.Errorf("%s: label index %d of %v", tc.preset, ex.Label, s.Labels.Names)
		}
	}
	c, _ := LoadConfig("", []string{"model.dir=m", "data.preset=mnli-mm", "data.dir=/g/MNLI"})
	if c.Data.Train != "/g/MNLI/train.tsv" || c.Data.Validation != "/g/MNLI/dev_mismatched.tsv" || c.MetricForBest() != "accuracy" {
		t.Errorf("mnli-mm files: %+v", c.Data)
	}
	c, _ = LoadConfig("", []string{"model.dir=m", "data.preset=cola", "data.train=x"})
	if c.MetricForBest() != "mcc" {
		t.Errorf("cola metric %s", c.MetricForBest())
	}
}

func TestLabelsFromData(t *testing.T) {
	ds := &Dataset{Examples: []Example{{RawLabel: "10"}, {RawLabel: "2"}, {RawLabel: "2"}, {RawLabel: "1"}}}
	if got := strings.Join(LabelsFromData(ds).Names, ","); got != "1,2,10" {
		t.Errorf("numeric order: %s", got)
	}
	ds = &Dataset{Examples: []Example{{RawLabel: "spam"}, {RawLabel: "ham"}, {RawLabel: "spam"}}}
	if got := strings.Join(LabelsFromData(ds).Names, ","); got != "ham,spam" {
		t.Errorf("string order: %s", got)
	}
}

// A label-sorted file must not give a one-label subsample.
func TestSubsample(t *testing.T) {
	mk := func() *Dataset {
		ds := &Dataset{}
		for i := 0; i < 1000; i++ {
			l := "ham"
			if i >= 700 {
				l = "spam"
			}
			ds.Examples = append(ds.Examples, Example{Line: i + 1, RawLabel: l})
		}
		return ds
	}
	a, b, c := mk(), mk(), mk()
	a.Subsample(100, 5)
	b.Subsample(100, 5)
	c.Subsample(100, 6)
	spam := 0
	for i, ex := range a.Examples {
		if ex.RawLabel == "spam" {
			spam++
		}
		if i > 0 && ex.Line <= a.Examples[i-1].Line {
			t.Fatal("not in file order")
		}
		if b.Examples[i] != ex {
			t.Fatal("same seed, different sample")
		}
	}
	// 30% spam: a sample of 100 has 30 ± 4.6 (binomial sd); 10..50 cannot fail by chance.
	if len(a.Examples) != 100 || spam < 10 || spam > 50 {
		t.Errorf("%d examples, %d spam", len(a.Examples), spam)
	}
	same := 0
	for i := range a.Examples {
		if a.Examples[i] == c.Examples[i] {
			same++
		}
	}
	if same == 100 {
		t.Error("seed does not change the sample")
	}
	d := mk()
	d.Subsample(0, 1)
	if len(d.Examples) != 1000 {
		t.Error("0 must keep all")
	}
}
