package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/container/waiter"
	"golang.org/x/sys/unix"
)

// WatchCommand is argv[1] of the watcher: the small process that every detached container
// gets (the seed's "Daemon"). It creates the container as its parent, survives the CLI in a
// session of its own, waits for the container and records how it ended.
const WatchCommand = "watch"

// watchEnv=1 marks the watcher.
const watchEnv = "_FOCKKER_WATCH"

// watchRequest travels from the CLI to the watcher on fd 3.
type watchRequest struct {
	Roots Roots `json:"roots"`
	Spec  Spec  `json:"spec"`
}

// watchReply travels back on fd 4 once the container runs (or could not be started).
type watchReply struct {
	Record *Record `json:"record,omitempty"`
	Code   int     `json:"code,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// RunDetached starts a watcher for spec and returns the record of the running container, or
// the error (with its exit code) that kept it from running. Nothing is left on failure.
func RunDetached(roots Roots, spec Spec) (*Record, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer reqW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		return nil, err
	}
	defer repR.Close()
	// The watcher shares our hold on the installation's lock until its container has started:
	// from before it exists, the collector cannot take it for the watcher of a lost record.
	install, err := lockInstall(roots.State, unix.LOCK_SH)
	if err != nil {
		reqR.Close()
		repW.Close()
		return nil, err
	}
	defer install.Unlock()

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"fockker", WatchCommand} // as ps shows it
	// The watcher sets up networks, so it needs the host tools (iptables) on the CLI's PATH.
	// The container itself never sees this environment.
	path := os.Getenv("PATH")
	if path == "" {
		path = DefaultPath
	}
	// The state root in its environment tells the collector whose watcher it is.
	cmd.Env = append([]string{watchEnv + "=1", watchRootEnv + "=" + filepath.Clean(roots.State), "PATH=" + path}, testHookEnv()...)
	cmd.ExtraFiles = []*os.File{reqR, repW, install.f}   // fds 3, 4, 5
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the CLI and its terminal
	err = cmd.Start()
	reqR.Close()
	repW.Close()
	if err != nil {
		return nil, fmt.Errorf("start watcher: %w", err)
	}
	if err := json.NewEncoder(reqW).Encode(watchRequest{Roots: roots, Spec: spec}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("send request to watcher: %w", err)
	}
	reqW.Close()
	var rep watchReply
	if err := json.NewDecoder(repR).Decode(&rep); err != nil {
		werr := cmd.Wait()
		return nil, fmt.Errorf("watcher ended without a report (%v): %w", werr, err)
	}
	if rep.Error != "" {
		_ = cmd.Wait()
		return nil, &ExitError{Code: rep.Code, Err: errors.New(rep.Error)}
	}
	// The watcher lives on: not ours to reap. It will be re-parented when we exit.
	_ = cmd.Process.Release()
	return rep.Record, nil
}

// RunWatch is the watcher's body. It returns the watcher's exit code.
func RunWatch() int {
	if os.Getenv(watchEnv) != "1" {
		fmt.Fprintln(os.Stderr, "fockker: watch is internal: it is started by `fockker run -d`, not by hand")
		return ExitEngine
	}
	// Keep running whatever happens to the terminal or session the CLI had.
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGPIPE, unix.SIGTERM)
	reqf := os.NewFile(3, "request")
	repf := os.NewFile(4, "reply")
	install := os.NewFile(5, "installation lock") // held until the container started
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	unix.CloseOnExec(5)
	defer install.Close()
	reply := func(rep watchReply) {
		_ = json.NewEncoder(repf).Encode(rep) // the CLI treats a missing reply as a failure
		repf.Close()
	}
	fail := func(err error) int {
		code := ExitEngine
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		reply(watchReply{Code: code, Error: err.Error()})
		return code
	}
	var req watchRequest
	if err := json.NewDecoder(io.LimitReader(reqf, 1<<20)).Decode(&req); err != nil {
		return fail(fmt.Errorf("watcher: read request: %w", err))
	}
	reqf.Close()
	c, err := Create(req.Roots, req.Spec, IO{Log: true})
	if err != nil {
		return fail(err)
	}
	c.Record.WatcherPid = os.Getpid()
	if err := c.Start(); err != nil {
		_ = c.Destroy()
		return fail(err)
	}
	install.Close()
	reply(watchReply{Record: c.Record})
	if c.logf != nil {
		c.logf.Close() // the container holds its own copy
	}
	// Wait in a few kilobytes of C instead of a Go runtime (container/waiter); it comes back
	// as `watch-done` to record the exit. Only if that exec fails does Go wait here.
	c.waitMarker() // the exec would end it halfway
	err = waiter.Exec(c.Record.Pid, []string{
		watchEnv + "=1", "PATH=" + os.Getenv("PATH"),
		watchRootEnv + "=" + filepath.Clean(req.Roots.State), doneImageEnv + "=" + req.Roots.Image,
		doneNameEnv + "=" + c.Record.Name, doneIDEnv + "=" + c.Record.ID,
	})
	logWatcher(req.Roots, c.Record.Name, err)
	if err := c.Finish(c.Wait()); err != nil {
		logWatcher(req.Roots, c.Record.Name, fmt.Errorf("record exit: %w", err))
		return ExitEngine
	}
	return 0
}

// What the watcher passes through the lean waiter to `watch-done`.
const (
	doneImageEnv = "_FOCKKER_DONE_IMAGE"
	doneNameEnv  = "_FOCKKER_DONE_NAME"
	doneIDEnv    = "_FOCKKER_DONE_ID"
)

// RunWatchDone is the watcher's last step, executed by the lean waiter once the container's
// init is gone: it records the exit (and removes a --rm container). It returns the exit code.
func RunWatchDone() int {
	if os.Getenv(watchEnv) != "1" {
		fmt.Fprintln(os.Stderr, "fockker: watch-done is internal: it is started by the watcher, not by hand")
		return ExitEngine
	}
	roots := Roots{State: os.Getenv(watchRootEnv), Image: os.Getenv(doneImageEnv)}
	name, id := os.Getenv(doneNameEnv), os.Getenv(doneIDEnv)
	ws, err := waiter.Status()
	if err == nil {
		err = roots.Validate()
	}
	if err == nil {
		err = ValidateName("container", name)
	}
	if err != nil {
		logWatcher(roots, name, err)
		return ExitEngine
	}
	rec, err := NewStore(roots.State).Load(name)
	if errors.Is(err, ErrNotFound) {
		return 0 // removed meanwhile (rm -f)
	}
	if err != nil || rec.ID != id {
		logWatcher(roots, name, err)
		return 0
	}
	cg, err := cgroup.Load(rec.Spec.CgroupParent, name)
	if err != nil {
		logWatcher(roots, name, err)
		cg = nil
	}
	if err := finish(roots, rec, waitCode(ws), cg); err != nil {
		logWatcher(roots, name, fmt.Errorf("record exit: %w", err))
		return ExitEngine
	}
	return 0
}

// logWatcher appends a watcher's error to the container's log: after the CLI has gone,
// nobody else is left to tell. A nil error logs nothing.
func logWatcher(roots Roots, name string, err error) {
	if err == nil || ValidateName("container", name) != nil {
		return
	}
	if f, ferr := os.OpenFile(roots.LogPath(name), os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
		fmt.Fprintf(f, "fockker watcher: %v\n", err)
		f.Close()
	}
}
