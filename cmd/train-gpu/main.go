// Command train-gpu trains Houlsby bottleneck adapters inside a frozen
// pretrained BERT encoder, on the CPU or a CUDA GPU, and uses them.
//
// Run `train-gpu help` for the subcommands and `train-gpu CMD --help` for the
// options of each; docs/cli.md has the same text with examples.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"params", "MODEL_DIR|config.json [flags]", "print parameter counts: the bottleneck sweep m = 8..256 and the trained share", runParams},
		{"inspect", "MODEL_DIR", "load a model folder and print its config, tensors, parameter groups and fingerprint", runInspect},
		{"train", "-c run.toml [flags]", "train an adapter (or another strategy) as a TOML run file says", runTrain},
		{"eval", "--adapter FILE --data FILE [flags]", "evaluate an adapter file on a labelled dataset", runEval},
		{"predict", "--adapter FILE [--input FILE.jsonl | text on stdin] [flags]", "predict labels with an adapter file", runPredict},
		{"serve", "--model DIR --adapters DIR [flags]", "serve many adapter files over one frozen backbone as a JSON HTTP API", runServe},
		{"loadgen", "--url URL --data FILE.jsonl [flags]", "send predict load to a train-gpu serve on loopback and report throughput, latency and errors", runLoadgen},
		{"bench", "[flags]", "time forward/backward steps of the adapted model", runBench},
		{"data", "NAME [--in DIR] [--out DIR]", "prepare a real dataset: spamassassin, fortunes, afinn or wordnet", runData},
		{"export", "--adapter FILE|DIR --model DIR --out PATH [--format hf|adapterhub|onnx]", "write an adapter as a Hugging Face folder, an AdapterHub folder or an ONNX model", runExport},
		{"sweep", "-c sweep.toml [--quick] [flags]", "run a grid of tasks x strategies x settings x seeds (resumable; one job per process; job lists for schedulers)", runSweep},
		{"report", "-c sweep.toml [--quick] [--doc FILE]", "merge a sweep's results into results.jsonl, report.md and PNG plots", runReport},
		{"ablate", "--adapter FILE --data FILE [flags]", "evaluate an adapter with the adapters of every span of layers removed; table and heat map", runAblate},
		{"plot", "RUN_DIR [--out FILE.png]", "plot a run's loss, learning rate and validation metrics against steps from its log.jsonl", runPlot},
		{"probe", "[--gpu N] [--json]", "say which device --device auto uses and why (the GPU through the CUDA build, or the CPU)", runProbe},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `train-gpu: Houlsby bottleneck adapters for frozen BERT encoders (CPU or CUDA).

Usage:
  train-gpu COMMAND [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.summary, "train-gpu "+c.name+" "+c.args)
	}
	fmt.Fprintf(w, `
Run "train-gpu COMMAND --help" for the flags of a command.
Documentation: docs/cli.md; an annotated run file: examples/spam.toml.
`)
}

// errUsage marks an error whose message is already the command's usage.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	// A command that wants a GPU may continue in the CUDA build (device.go).
	if code, done := newHandoff().dispatch(args, stderr); done {
		return code
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintf(stderr, "train-gpu %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "train-gpu: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// newFlags makes a FlagSet whose --help prints head (what the command does
// and its arguments) and then every flag with its default.
func newFlags(name, head string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%s\nFlags:\n", strings.TrimSpace(head))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and positional arguments in any order ("params DIR
// --strategy full" and "params --strategy full DIR" both work) and checks
// the number of positional arguments against [min, max] (max < 0: any).
func parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// multiFlag collects a repeated string flag.
type multiFlag []string

// String joins the values (flag.Value).
func (m *multiFlag) String() string { return strings.Join(*m, " ") }

// Set appends one value (flag.Value).
func (m *multiFlag) Set(s string) error {
	*m = append(*m, s)
	return nil
}

// setFlags records which flags were given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	seen := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	return seen
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
