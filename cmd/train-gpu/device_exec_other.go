//go:build !unix

package main

import (
	"errors"
	"os"
	"os/exec"
)

// execProgram runs path as a child with this process's standard streams
// and exits with its status: without execve this is the closest to
// replacing the process. (The CUDA build exists for Linux only; this keeps
// other builds compiling.)
func execProgram(path string, argv, env []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
