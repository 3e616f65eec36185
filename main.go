// Command fockker is a small container engine: overlayfs images, namespaces, cgroups and
// bridge networks behind a docker-like command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/FishingRodd/fockker/container"
	"github.com/FishingRodd/fockker/container/waiter"
)

func init() {
	// Containers are started with a parent-death signal, which the kernel ties to the thread
	// that forked them. Keeping the main goroutine on the main thread, which lives as long as
	// the process, makes "the container dies with its parent" mean the process, not a thread.
	// An attached run lets it go once its container's init is forked (see runAttached).
	runtime.LockOSThread()
}

func main() {
	// Internal roles are dispatched before the CLI parses anything, so no CLI hook, logging
	// or network set-up meant for the host ever runs inside a container.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case container.WatchCommand:
			os.Exit(container.RunWatch())
		case waiter.DoneCommand:
			os.Exit(container.RunWatchDone())
		}
	}
	os.Exit(run(os.Args))
}

// run executes the CLI and turns its outcome into an exit code: the container's own code,
// docker's 126/127, or 125 for anything that went wrong in fockker.
func run(args []string) int {
	err := newApp().Run(withSignals(context.Background(), args), args)
	if err == nil {
		return 0
	}
	var ee *container.ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(os.Stderr, "fockker:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "fockker:", err)
	return container.ExitEngine
}
