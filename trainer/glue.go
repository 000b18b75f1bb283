package trainer

import "sort"

// Preset is the layout of one GLUE task's TSV files as distributed by the
// GLUE benchmark (gluebenchmark.com, the files download_glue_data.py
// fetches). The train and dev files carry labels; test files do not.
type Preset struct {
	// Header tells whether the files start with a header row.
	Header bool
	// TextField, TextPairField and LabelField are header names (files with
	// a header); TextColumn and LabelColumn are 0-based columns (-1: use the
	// names).
	TextField, TextPairField, LabelField string
	TextColumn, LabelColumn              int
	// Labels is the label vocabulary in the order of Hugging Face's GLUE
	// processors (transformers/data/processors/glue.py); nil for regression.
	Labels []string
	// PositiveLabel is the label binary F1 counts as positive ("" = none).
	PositiveLabel string
	// Regression is true for STS-B (a similarity score in [0, 5]).
	Regression bool
	// Metric is the task's main metric (Wang et al., 2019, table 1).
	Metric string
	// Train and Validation are the file names inside the task folder. GLUE's
	// test files have other layouts (an index column, no label), so they
	// are not part of a preset.
	Train, Validation string
}

// Presets maps a lower-case GLUE task name to its layout. "mnli" validates
// on the matched and "mnli-mm" on the mismatched dev set.
var Presets = map[string]Preset{
	// CoLA train/dev: no header; columns source, label, original label
	// (or empty), sentence.
	"cola": {Header: false, TextColumn: 3, LabelColumn: 1, Labels: []string{"0", "1"}, PositiveLabel: "1",
		Metric: "mcc", Train: "train.tsv", Validation: "dev.tsv"},
	// SST-2: header "sentence\tlabel".
	"sst-2": {Header: true, TextField: "sentence", LabelField: "label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"0", "1"}, PositiveLabel: "1", Metric: "accuracy", Train: "train.tsv", Validation: "dev.tsv"},
	// MRPC: header "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String".
	"mrpc": {Header: true, TextField: "#1 String", TextPairField: "#2 String", LabelField: "Quality", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"0", "1"}, PositiveLabel: "1", Metric: "f1", Train: "train.tsv", Validation: "dev.tsv"},
	// QQP: header "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate".
	"qqp": {Header: true, TextField: "question1", TextPairField: "question2", LabelField: "is_duplicate", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"0", "1"}, PositiveLabel: "1", Metric: "f1", Train: "train.tsv", Validation: "dev.tsv"},
	// STS-B: header "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore".
	"sts-b": {Header: true, TextField: "sentence1", TextPairField: "sentence2", LabelField: "score", TextColumn: -1, LabelColumn: -1,
		Regression: true, Metric: "spearman", Train: "train.tsv", Validation: "dev.tsv"},
	// MNLI: header "index promptID pairID genre sentence1_binary_parse
	// sentence2_binary_parse sentence1_parse sentence2_parse sentence1
	// sentence2 label1 [label2..label5] gold_label" (tab-separated).
	"mnli": {Header: true, TextField: "sentence1", TextPairField: "sentence2", LabelField: "gold_label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"contradiction", "entailment", "neutral"}, Metric: "accuracy",
		Train: "train.tsv", Validation: "dev_matched.tsv"},
	"mnli-mm": {Header: true, TextField: "sentence1", TextPairField: "sentence2", LabelField: "gold_label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"contradiction", "entailment", "neutral"}, Metric: "accuracy",
		Train: "train.tsv", Validation: "dev_mismatched.tsv"},
	// QNLI: header "index\tquestion\tsentence\tlabel".
	"qnli": {Header: true, TextField: "question", TextPairField: "sentence", LabelField: "label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"entailment", "not_entailment"}, Metric: "accuracy", Train: "train.tsv", Validation: "dev.tsv"},
	// RTE: header "index\tsentence1\tsentence2\tlabel".
	"rte": {Header: true, TextField: "sentence1", TextPairField: "sentence2", LabelField: "label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"entailment", "not_entailment"}, Metric: "accuracy", Train: "train.tsv", Validation: "dev.tsv"},
	// WNLI: header "index\tsentence1\tsentence2\tlabel".
	"wnli": {Header: true, TextField: "sentence1", TextPairField: "sentence2", LabelField: "label", TextColumn: -1, LabelColumn: -1,
		Labels: []string{"0", "1"}, Metric: "accuracy", Train: "train.tsv", Validation: "dev.tsv"},
}

// PresetNames lists the preset names, sorted.
func PresetNames() []string {
	var out []string
	for k := range Presets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
