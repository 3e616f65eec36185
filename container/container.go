package container

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/network"
	"golang.org/x/sys/unix"
)

// IO says where a container's standard streams go.
type IO struct {
	Stdin, Stdout, Stderr *os.File // nil means /dev/null
	// Tty: Stdin is the slave of a pseudo-terminal that becomes the controlling terminal.
	Tty bool
	// Log: stdout and stderr go to the container's log file (detached containers).
	Log bool
}

// ExitError carries the exit code fockker must end with: the container's own, or docker's
// 125/126/127 when the command could not be started.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code to use.
func (e *ExitError) ExitCode() int { return e.Code }

// Container is a container being created and run by this process, its parent.
type Container struct {
	Record *Record
	roots  Roots
	store  *Store
	lock   *Lock
	// install is a shared lock on the state root, held from before the record is reserved
	// until the container started or was destroyed: the collector never sees it half-built.
	install *Lock
	cmd     *exec.Cmd
	cg      *cgroup.Cgroup
	layers  bool          // the overlay directories are ours to remove
	ctl     *os.File      // to init: config, then the start byte
	status  *bufio.Reader // from init: ready / error reports
	logf    *os.File
}

// newID returns a random 10-digit ID, the form the seed's ps shows.
func newID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(9_000_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d", n.Int64()+1_000_000_000), nil
}

// Create builds a container up to the point where its init waits to exec the user's command:
// record reserved, layers made, cgroup with limits, init cloned into new mount, UTS, IPC,
// PID and network namespaces, root filesystem ready. On any failure everything it made is
// removed again. The record stays locked until Start or Destroy.
func Create(roots Roots, spec Spec, stdio IO) (c *Container, err error) {
	if err := roots.Validate(); err != nil {
		return nil, err
	}
	if len(spec.Args) == 0 {
		return nil, errors.New("no command given and the image has none")
	}
	// What the container's processes are restricted to, computed before anything exists.
	proc, err := spec.Security.Process()
	if err != nil {
		return nil, err
	}
	install, err := lockInstall(roots.State, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer func() {
		if c == nil {
			install.Unlock() // failed before there was a container to destroy
		}
	}()
	lower, err := EnsureImage(roots, spec.Image)
	if err != nil {
		return nil, err
	}
	store := NewStore(roots.State)
	rec := &Record{
		Command:     spec.Args,
		CreateTime:  time.Now().Format(timeLayout),
		Status:      Created,
		Volume:      []string{},
		PortMapping: []string{},
		NetworkName: spec.Network,
		Spec:        spec,
	}
	if spec.Detach {
		// This process is the watcher: recorded from the start, so that the collector can
		// tell it from the watchers of containers that have no record.
		rec.WatcherPid = os.Getpid()
	}
	for _, p := range spec.Ports {
		rec.PortMapping = append(rec.PortMapping, p.String())
	}
	for _, v := range spec.Volumes {
		rec.Volume = append(rec.Volume, v.String())
	}
	var lock *Lock
	for attempt := 0; ; attempt++ {
		if rec.ID, err = newID(); err != nil {
			return nil, err
		}
		rec.Name = spec.Name
		if rec.Name == "" {
			rec.Name = rec.ID
		}
		if rec.Spec.Hostname == "" {
			rec.Spec.Hostname = rec.Name
		}
		if err := ValidateName("container", rec.Name); err != nil {
			return nil, err
		}
		lock, err = store.Reserve(rec)
		if err == nil {
			break
		}
		if spec.Name != "" || !errors.Is(err, ErrNameInUse) || attempt == 5 {
			return nil, err
		}
	}
	c = &Container{Record: rec, roots: roots, store: store, lock: lock, install: install}
	defer func() {
		if err != nil {
			c.Destroy()
		}
	}()
	pauseAt(pauseRunReserved)

	if err := createLayers(roots, rec.Name); err != nil {
		return c, err
	}
	c.layers = true
	pauseAt(pauseRunLayers)
	limits := spec.Limits
	limits.AllDevices = spec.Security.Privileged
	cg, err := cgroup.New(spec.CgroupParent, rec.Name, limits)
	if err != nil {
		return c, err
	}
	if err := cg.Create(); err != nil {
		return c, err
	}
	c.cg = cg
	pauseAt(pauseRunCgroup)

	if stdio.Log {
		f, err := os.OpenFile(roots.LogPath(rec.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return c, err
		}
		c.logf = f
		stdio.Stdout, stdio.Stderr = f, f
	}
	if err := c.startInit(stdio); err != nil {
		return c, err
	}
	// Recorded at once: whatever happens to us from now on, ps can tell whether the
	// container lives, and rm can kill it.
	if rec.StartTime, err = StartTime(rec.Pid); err != nil {
		return c, fmt.Errorf("container init: %w", err)
	}
	if err := store.Save(rec); err != nil {
		return c, err
	}
	pauseAt(pauseRunInit)
	cfg := initConfig{
		Args: rec.Spec.Args, Env: rec.Spec.Env, Cwd: rec.Spec.WorkingDir, Hostname: rec.Spec.Hostname,
		Tty: stdio.Tty, OwnNet: spec.ownNet(), Lower: lower, Upper: roots.UpperDir(rec.Name), Work: roots.WorkDir(rec.Name),
		Merged: roots.MergedDir(rec.Name), Volumes: rec.Spec.Volumes, Security: proc,
	}
	if err := json.NewEncoder(c.ctl).Encode(&cfg); err != nil {
		return c, fmt.Errorf("send config to init: %w", err)
	}
	if msg, err := c.readStatus(); err != nil {
		return c, err
	} else if msg.Type != "ready" || msg.User == nil {
		return c, fmt.Errorf("container init: unexpected report %q", msg.Type)
	} else {
		rec.User = msg.User
	}
	if spec.bridged() {
		if len(spec.Ports) > 0 {
			// A dead container that nobody recorded as stopped must not hold the ports.
			if err := releaseStalePorts(roots); err != nil {
				return c, err
			}
		}
		if err := c.connect(); err != nil {
			return c, err
		}
		pauseAt(pauseRunNetwork)
	}
	if err := store.Save(rec); err != nil {
		return c, err
	}
	return c, nil
}

// startInit re-executes this binary as the container's init in new namespaces and puts it
// in the container's cgroup before it receives its config.
func (c *Container) startInit(stdio IO) error {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return err
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return err
	}
	defer ctlR.Close()
	defer stW.Close()
	c.ctl = ctlW
	c.status = bufio.NewReader(stR)

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"fockker", InitCommand}
	cmd.Env = []string{initEnv + "=1"} // never the host's environment
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	cmd.ExtraFiles = []*os.File{ctlR, stW} // fds 3 and 4
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID)
	if c.Record.Spec.ownNet() {
		flags |= unix.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		Setsid:     true,
		Setctty:    stdio.Tty,
		Ctty:       0,
		// The container lives no longer than its parent (the CLI or the watcher).
		Pdeathsig: unix.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start container init: %w", err)
	}
	c.cmd = cmd
	c.Record.Pid = cmd.Process.Pid
	if err := c.cg.Add(cmd.Process.Pid); err != nil {
		return err
	}
	return nil
}

// connect attaches the parked init's network namespace to the container's network (the
// default one is created on first use, or rebuilt from its config if its bridge vanished).
func (c *Container) connect() error {
	mgr := network.NewManager(c.roots.State)
	if c.Record.Spec.Network == network.DefaultName {
		if _, err := mgr.EnsureDefault(); err != nil {
			return err
		}
	}
	ep, err := mgr.Connect(c.Record.Spec.Network, c.Record.ID, c.Record.Pid, c.Record.Spec.Ports)
	if err != nil {
		return fmt.Errorf("container %s: network %s: %w", c.Record.Name, c.Record.Spec.Network, err)
	}
	c.Record.Endpoint = ep
	c.Record.IP = ep.IP.String()
	return nil
}

// readStatus reads one report from init. EOF means init is gone: its exit status explains.
func (c *Container) readStatus() (*initMsg, error) {
	line, err := c.status.ReadBytes('\n')
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read init status: %w", err)
	}
	var msg initMsg
	if err := json.Unmarshal(line, &msg); err != nil {
		return nil, fmt.Errorf("container init: malformed report %q: %w", strings.TrimSpace(string(line)), err)
	}
	if msg.Type == "error" {
		return nil, &ExitError{Code: msg.Code, Err: errors.New(msg.Error)}
	}
	return &msg, nil
}

// Start releases init to exec the user's command and returns once the exec has happened
// (or failed, with docker's 126/127 exit code). The record then says running.
func (c *Container) Start() error {
	pauseAt(pauseRunBeforeStart)
	if _, err := c.ctl.Write([]byte{1}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	c.ctl.Close()
	c.ctl = nil
	// The status pipe is close-on-exec in init: EOF means the exec succeeded.
	if msg, err := c.readStatus(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("container init: unexpected report %q", msg.Type)
		}
		return err
	}
	c.Record.Status = Running
	c.Record.StartedAt = time.Now().Format(time.RFC3339Nano)
	if err := c.store.Save(c.Record); err != nil {
		return err
	}
	c.lock.Unlock()
	c.install.Unlock()
	pauseAt(pauseRunStarted)
	return nil
}

// Wait waits for the container's init to exit and returns its exit code.
func (c *Container) Wait() int {
	_ = c.cmd.Wait() // the exit status is in ProcessState
	if c.logf != nil {
		c.logf.Close()
	}
	return ExitCodeOf(c.cmd.ProcessState)
}

// ExitCodeOf is a finished process's exit code, 128+N for a death by signal N, as shells
// report it.
func ExitCodeOf(ps *os.ProcessState) int {
	if ps == nil {
		return ExitEngine
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitCode(ws)
	}
	return ps.ExitCode()
}

// waitCode is the exit code of a wait status: 128+N for a death by signal N.
func waitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Signaled():
		return 128 + int(ws.Signal())
	case ws.Exited():
		return ws.ExitStatus()
	}
	return ExitEngine
}

// Finish records the exit of a container this process waited for, and removes the container
// when it was started with --rm. A container removed meanwhile (rm -f) is not an error.
func (c *Container) Finish(code int) error {
	return finish(c.roots, c.Record, code, c.cg)
}

// errReplaced: the record under the name now belongs to another container.
var errReplaced = errors.New("record replaced by another container")

// finish records that the container rec ended with code (releasing its published ports and
// noting an OOM kill from its cgroup cg, if known), then removes it if it was run with --rm.
// A container removed, or replaced under its name, meanwhile is left alone.
func finish(roots Roots, rec *Record, code int, cg *cgroup.Cgroup) error {
	_, err := NewStore(roots.State).Update(rec.Name, func(r *Record) error {
		if r.ID != rec.ID {
			return errReplaced
		}
		if err := releasePorts(roots, r); err != nil {
			return err
		}
		r.Status = Stopped
		r.ExitCode = &code
		r.FinishedAt = time.Now().Format(time.RFC3339Nano)
		if cg != nil && code == 128+int(unix.SIGKILL) {
			n, err := cg.OOMKills()
			if err != nil {
				return err
			}
			r.OOMKilled = n > 0
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, errReplaced) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Spec.AutoRemove {
		return Remove(roots, rec.Name, true)
	}
	return nil
}

// Destroy undoes Create: kills init if it runs, removes the cgroup, the layers and the record.
func (c *Container) Destroy() error {
	var errs []error
	if c.ctl != nil {
		c.ctl.Close()
		c.ctl = nil
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Kill() // it may have exited already; Wait tells
		_ = c.cmd.Wait()
		c.cmd = nil
	}
	if c.logf != nil {
		c.logf.Close()
	}
	if ep := c.Record.Endpoint; ep != nil {
		if err := network.NewManager(c.roots.State).Disconnect(ep); err != nil {
			errs = append(errs, err)
		}
	}
	if c.cg != nil {
		if err := c.cg.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.layers {
		if err := removeLayers(c.roots, c.Record.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.store.Delete(c.Record.Name); err != nil {
		errs = append(errs, err)
	}
	c.lock.Unlock()
	c.install.Unlock()
	return errors.Join(errs...)
}

// Signal sends sig to the container's init (the CLI forwards the signals it receives).
func (c *Container) Signal(sig os.Signal) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return ErrNotRunning
	}
	return c.cmd.Process.Signal(sig)
}
