// Package ptx embeds the PTX that `make ptx` (scripts/ptx.sh) compiles from
// kernels/*.cu into this folder, one file per op family. The files are build
// outputs, not committed: a cuda-tagged build must run `make ptx` first
// (scripts/cuda-check.sh does). Without the cuda tag the package is empty.
package ptx
