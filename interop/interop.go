// Package interop is the library's front door for adapter files in every
// format train-gpu reads: this project's adapter file (adapter.Load) and an
// AdapterHub folder (interop/adapterhub). Writers live in the format
// packages: adapterhub.Export, onnx.Export, and trainer.ExportHF for a
// Hugging Face folder.
package interop

import (
	"github.com/houlsby/adapters/adapter"
	"github.com/houlsby/adapters/interop/adapterhub"
	"github.com/houlsby/adapters/model"
)

// LoadAdapter reads the adapter at path for the base checkpoint ck: an
// AdapterHub folder (a folder holding adapter_config.json, see
// adapterhub.Load) or an adapter file (adapter.Load, which refuses a file
// made for another base model).
func LoadAdapter(path string, ck *model.Checkpoint) (*adapter.File, error) {
	if adapterhub.IsFolder(path) {
		return adapterhub.Load(path, ck)
	}
	return adapter.Load(path, ck.Fingerprint)
}
