// Command initadapter writes the untrained adapter of a run file: the
// initial values trainer.NewModel gives every trained tensor (train.seed),
// as an adapter file (DIR/adapter.safetensors) and as an AdapterHub folder
// (DIR/adapterhub, named NAME). tests/ref/gen_adapterhub_trainstep.py runs
// it so that the AdapterHub side of the training-parity test starts from
// weights exported from here:
//
//	go run ./tests/ref/initadapter -c examples/spam-adapterhub.toml -out DIR -name NAME
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/houlsby/adapters/adapter"
	cpu "github.com/houlsby/adapters/cpu_fallback"
	"github.com/houlsby/adapters/interop/adapterhub"
	"github.com/houlsby/adapters/trainer"
)

func main() {
	cfgPath := flag.String("c", "", "the run file")
	out := flag.String("out", "", "the folder to write")
	name := flag.String("name", "init", "the AdapterHub name")
	flag.Parse()
	if err := run(*cfgPath, *out, *name); err != nil {
		fmt.Fprintln(os.Stderr, "initadapter:", err)
		os.Exit(1)
	}
}

func run(cfgPath, out, name string) error {
	if cfgPath == "" || out == "" {
		return fmt.Errorf("-c and -out are required")
	}
	cfg, err := trainer.LoadConfig(cfgPath, nil)
	if err != nil {
		return err
	}
	s, err := trainer.Open(cfg)
	if err != nil {
		return err
	}
	desc := s.AdapterFile()
	m, err := trainer.NewModel(cpu.New(), s.Ckpt, desc, 1, cfg.Model.MaxLength, cfg.Train.Seed)
	if err != nil {
		return err
	}
	defer m.Free()
	f, err := trainer.TrainedFile(m, desc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := adapter.Save(filepath.Join(out, "adapter.safetensors"), f); err != nil {
		return err
	}
	return adapterhub.Export(filepath.Join(out, "adapterhub"), f, adapterhub.ExportOptions{Name: name, ModelName: filepath.Base(cfg.Model.Dir)})
}
