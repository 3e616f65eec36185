//go:build linux && cgo

// Package waiter is the lean half of a detached container's watcher: a C constructor that,
// before the Go runtime starts, waits for the container's init and then hands its wait
// status back to fockker to record.
//
// The watcher (a Go process) creates and starts the container, then execve()s itself with
// _FOCKKER_WAIT_PID set. The container's init stays its child across the exec. The
// constructor in waiter.c sees the variable, waits for that child with a few kilobytes of
// C instead of a Go runtime, and, once it is gone, execve()s fockker again as
// `fockker watch-done` with _FOCKKER_WAIT_STATUS holding the raw wait status.
package waiter

/*
#cgo CFLAGS: -Wall -Wextra -Werror -std=gnu11
extern void fockker_waiter(void);
void __attribute__((constructor)) fockker_waiter_init(void) { fockker_waiter(); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// The variables between the watcher, the constructor and `watch-done`.
const (
	pidEnv    = "_FOCKKER_WAIT_PID"
	statusEnv = "_FOCKKER_WAIT_STATUS"
)

// DoneCommand is argv[1] of the process the constructor executes once the container is gone.
const DoneCommand = "watch-done"

// Exec replaces the calling process with the lean waiter for pid, a child of this process.
// env is the environment `watch-done` gets back (the waiter adds the status). It returns
// only on failure. The caller must be the thread that forked pid (see main's LockOSThread):
// the child's parent-death signal is tied to that thread.
func Exec(pid int, env []string) error {
	if pid <= 0 {
		return fmt.Errorf("waiter: bad pid %d", pid)
	}
	env = append(env, pidEnv+"="+strconv.Itoa(pid))
	err := syscall.Exec("/proc/self/exe", []string{"fockker", "watch-wait"}, env)
	return fmt.Errorf("waiter: exec: %w", err)
}

// Status returns the wait status the constructor passed to `watch-done`.
func Status() (syscall.WaitStatus, error) {
	v, ok := os.LookupEnv(statusEnv)
	if !ok {
		return 0, errors.New("waiter: no wait status: watch-done is internal")
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("waiter: wait status %q: %w", v, err)
	}
	return syscall.WaitStatus(n), nil
}
