//go:build unix

package main

import "syscall"

// execProgram replaces this process with path (execve): the CUDA build
// keeps the process id, the standard streams (stdin too, for predict) and
// the signal disposition a user or scheduler expects of one program.
func execProgram(path string, argv, env []string) error {
	return syscall.Exec(path, argv, env)
}
