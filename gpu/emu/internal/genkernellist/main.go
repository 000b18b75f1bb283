// Command genkernellist writes kernel_list.h, the emulator's kernel table
// (package kernellist), into the current folder; `go generate ./gpu/emu`
// runs it there.
package main

import (
	"log"
	"os"

	"github.com/houlsby/adapters/gpu/emu/internal/kernellist"
)

func main() {
	if err := os.WriteFile("kernel_list.h", kernellist.Render(), 0o644); err != nil {
		log.Fatal(err)
	}
}
