package container

import (
	"fmt"
	"github.com/FishingRodd/fockker/internal/atomicfile"
	"os"
	"path/filepath"
	"time"
)

// Crash-test hook: with both variables set, fockker stops at the named step of run, stop or
// rm, so that a test can SIGKILL the CLI, the watcher or the container exactly there and check
// what is left. It is inert unless both are set, and the second one, a file the test owns,
// makes it unmistakably a test facility:
//
//	FOCKKER_TEST_PAUSE=run:network           the step to stop at (see the pause* constants)
//	FOCKKER_TEST_PAUSE_NOTIFY=/tmp/x/paused  written ("PID STEP") when stopped there
//
// The process stays stopped until it is killed or the notify file is removed, then goes on.
// The watcher of `run -d` inherits both, so a detached run stops in the watcher.
const (
	pauseEnv       = "FOCKKER_TEST_PAUSE"
	pauseNotifyEnv = "FOCKKER_TEST_PAUSE_NOTIFY"
)

// The steps where the hook may stop a process.
const (
	pauseRunReserved    = "run:reserve"      // record reserved (status created, no pid)
	pauseRunLayers      = "run:layers"       // overlay directories made
	pauseRunInit        = "run:init"         // init cloned, in the cgroup, pid recorded
	pauseRunCgroup      = "run:cgroup"       // cgroup complete, limits applied
	pauseRunNetwork     = "run:network"      // attached to its network, ports published
	pauseRunBeforeStart = "run:before-start" // record complete, the command about to be sent
	pauseRunStarted     = "run:started"      // user command exec'd, record says running
	pauseStopSignalled  = "stop:signalled"   // SIGTERM sent, not yet waited for
	pauseStopExited     = "stop:exited"      // the container is gone, exit not yet recorded
	pauseRmKilled       = "rm:killed"        // the container is gone, nothing removed yet
	pauseRmReleased     = "rm:released"      // network, cgroup and layers released, the record not yet
)

// testHookEnv returns the hook's variables, to pass on to a watcher; nil when it is off.
func testHookEnv() []string {
	step, notify := os.Getenv(pauseEnv), os.Getenv(pauseNotifyEnv)
	if step == "" || notify == "" {
		return nil
	}
	return []string{pauseEnv + "=" + step, pauseNotifyEnv + "=" + notify}
}

// pauseAt stops the process at step if the crash-test hook asks for it.
func pauseAt(step string) {
	if os.Getenv(pauseEnv) != step {
		return
	}
	notify := os.Getenv(pauseNotifyEnv)
	if notify == "" || !filepath.IsAbs(notify) {
		return
	}
	if err := atomicfile.Write(notify, fmt.Appendf(nil, "%d %s\n", os.Getpid(), step), 0o600, atomicfile.Replace); err != nil {
		fmt.Fprintf(os.Stderr, "fockker: test pause at %s: %v\n", step, err)
		return
	}
	for {
		if _, err := os.Stat(notify); os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
