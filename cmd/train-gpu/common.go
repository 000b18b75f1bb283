package main

import (
	"fmt"
	"io"

	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/backend"
	"github.com/houlsby/adapters/interop"
	"github.com/houlsby/adapters/model"
	"github.com/houlsby/adapters/model/tokenizer"
	"github.com/houlsby/adapters/trainer"
)

// Helpers shared by the subcommands that use an adapter file (eval,
// predict, export).

// formatScores prints the metrics of a task.
func formatScores(s *trainer.Scores, regression bool) string {
	if regression {
		return fmt.Sprintf("loss %.4f  pearson %.4f  spearman %.4f  (n=%d)", s.Loss, s.Pearson, s.Spearman, s.N)
	}
	f1 := ""
	if s.Binary {
		f1 = fmt.Sprintf("  f1 %.4f", s.F1)
	}
	return fmt.Sprintf("loss %.4f  accuracy %.4f%s  macro_f1 %.4f  mcc %.4f  (n=%d)", s.Loss, s.Accuracy, f1, s.MacroF1, s.MCC, s.N)
}

// writePerClass prints every class's precision, recall, F1 and support,
// then the confusion matrix (rows gold, columns predicted).
func writePerClass(w io.Writer, s *trainer.Scores, labels []string) {
	if len(s.PerClass) != len(labels) {
		return
	}
	width := 5
	for _, l := range labels {
		width = max(width, len(l))
	}
	fmt.Fprintf(w, "%-*s  precision  recall      f1  support\n", width, "class")
	for i, c := range s.PerClass {
		fmt.Fprintf(w, "%-*s  %9.4f  %6.4f  %6.4f  %7d\n", width, labels[i], c.Precision, c.Recall, c.F1, c.Support)
	}
	fmt.Fprintf(w, "confusion matrix (rows: gold, columns: predicted, in the order above):\n")
	for i, row := range s.Confusion {
		fmt.Fprintf(w, "%-*s", width, labels[i])
		for _, n := range row {
			fmt.Fprintf(w, " %6d", n)
		}
		fmt.Fprintln(w)
	}
}

// dataFlags are the dataset layout flags shared by eval and predict.
type dataFlags struct {
	format, textField, pairField, labelField *string
}

func addDataFlags(fs interface {
	String(name, value, usage string) *string
}) dataFlags {
	return dataFlags{
		format:     fs.String("format", "", "data format: jsonl, tsv or csv (with a header row); empty: from the file's extension (.jsonl, .tsv, .csv)"),
		textField:  fs.String("text-field", "text", "field holding the text"),
		pairField:  fs.String("text-pair-field", "", "field holding the second text of pair tasks"),
		labelField: fs.String("label-field", "label", "field holding the label"),
	}
}

func (d dataFlags) layout(requireLabel bool) trainer.Layout {
	return trainer.Layout{Format: *d.format, Header: true, TextField: *d.textField, TextPairField: *d.pairField, LabelField: *d.labelField,
		TextColumn: -1, TextPairColumn: -1, LabelColumn: -1, RequireLabel: requireLabel}
}

// loadAdapter loads the base checkpoint and an adapter made for it: an
// adapter file or an AdapterHub folder (interop.LoadAdapter).
func loadAdapter(modelDir, path string) (*model.Checkpoint, *adapter.File, error) {
	if modelDir == "" || path == "" {
		return nil, nil, fmt.Errorf("--model and --adapter are required")
	}
	ck, err := model.LoadCheckpoint(modelDir)
	if err != nil {
		return nil, nil, err
	}
	f, err := interop.LoadAdapter(path, ck)
	if err != nil {
		return nil, nil, err
	}
	return ck, f, nil
}

// predictAll runs the adapted model over ds and scores it when labelled.
func predictAll(be backend.Backend, ck *model.Checkpoint, f *adapter.File, ds *trainer.Dataset, batch, maxLen int) (*trainer.Predictions, *trainer.Scores, error) {
	tok, err := tokenizer.Load(ck.Dir)
	if err != nil {
		return nil, nil, err
	}
	if maxLen > ck.Config.MaxPositionEmbeddings {
		return nil, nil, fmt.Errorf("--max-length %d exceeds max_position_embeddings %d", maxLen, ck.Config.MaxPositionEmbeddings)
	}
	m, err := trainer.NewModel(be, ck, f, batch, maxLen, 0)
	if err != nil {
		return nil, nil, err
	}
	defer m.Free()
	pos := -1
	if len(f.Labels) == 2 {
		pos = 1
	}
	return trainer.Evaluate(m, tok, trainer.Tokenize(tok, ds, maxLen), ds, batch, pos)
}
