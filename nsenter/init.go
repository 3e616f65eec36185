package nsenter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// initEnvFD names the private environment variable that switches the init
// constructor on; its value is the number of the fd carrying the messages.
const initEnvFD = "_FOCKKER_INIT_FD"

// The init's wire format and limits; nsenter.h documents them and holds the
// same values (main.go does not compile if they differ).
const (
	initMagic        = "FKIN"
	initVersion      = 1
	initHeaderSize   = 8
	initConfigFD     = 3
	initStatusFD     = 4
	maxVolumes       = 1024
	maxInitPaths     = 256
	maxHostname      = 64
	initTTY          = 0x01
	initLoopback     = 0x02
	initRestrict     = 0x04
	initReadOnlyRoot = 0x08
	volumeReadOnly   = 0x01
)

// InitConfig describes the root filesystem a new container's init builds in
// its own mount namespace before it reports ready (see init.c).
type InitConfig struct {
	// Overlay is the overlay's mount data (lowerdir=...,upperdir=...,workdir=...).
	Overlay string
	// Root is the existing directory the overlay is mounted on; it becomes /.
	Root string
	// Hostname is set in the container's UTS namespace.
	Hostname string
	// Cwd is made inside the root if missing ("" for none).
	Cwd string
	// Cgroups are joined by the init once it has its command (Init.Exec):
	// their hierarchies are opened before anything else, the cgroups in them
	// need to exist only by then.
	Cgroups []CgroupDir
	// Tty: stdin is a terminal, also bound on /dev/console.
	Tty bool
	// Loopback brings lo up (the container has a network namespace of its own).
	Loopback bool
	// Restrict mounts /sys read-only and applies MaskedPaths and ReadonlyPaths,
	// as docker does for a container that is not privileged.
	Restrict                   bool
	MaskedPaths, ReadonlyPaths []string
	// ReadOnlyRoot remounts the root read-only once everything is in place.
	ReadOnlyRoot bool
	// Volumes are bound into the root in this order.
	Volumes []Bind
}

// CgroupDir is a cgroup: Path (clean, relative) in the hierarchy mounted at
// Hierarchy. A v1 one is joined through its "tasks" file (the init has one
// thread), a v2 one through cgroup.procs.
type CgroupDir struct {
	Hierarchy, Path string
}

// Bind is a host file or directory bound into a container.
type Bind struct {
	Source   string // absolute host path; it must exist
	Target   string // clean absolute path in the container, made if missing
	ReadOnly bool
}

// Validate checks c against the C decoder's rules.
func (c *InitConfig) Validate() error {
	if c == nil {
		return invalid("no init config")
	}
	if c.Overlay == "" {
		return invalid("no overlay mount data")
	}
	if err := checkString("overlay", c.Overlay, maxPathLen); err != nil {
		return err
	}
	if err := checkCleanPath("root", c.Root, false); err != nil {
		return err
	}
	if c.Hostname == "" || len(c.Hostname) > maxHostname || strings.IndexByte(c.Hostname, 0) >= 0 {
		return invalid("hostname %q: want 1 to %d bytes without NUL", c.Hostname, maxHostname)
	}
	if c.Cwd != "" {
		if err := checkCleanPath("cwd", c.Cwd, true); err != nil {
			return err
		}
	}
	if len(c.Cgroups) > maxCgroupDirs {
		return invalid("%d cgroups exceed the limit of %d", len(c.Cgroups), maxCgroupDirs)
	}
	for _, cg := range c.Cgroups {
		if err := checkCleanPath("cgroup hierarchy", cg.Hierarchy, true); err != nil {
			return err
		}
		if cg.Path == "" || filepath.IsAbs(cg.Path) || filepath.Clean(cg.Path) != cg.Path || strings.HasPrefix(cg.Path, "..") {
			return invalid("cgroup path %q is not a clean relative path", cg.Path)
		}
		if err := checkString("cgroup path", cg.Path, maxPathLen); err != nil {
			return err
		}
	}
	for _, list := range [][]string{c.MaskedPaths, c.ReadonlyPaths} {
		if len(list) > maxInitPaths {
			return invalid("%d paths exceed the limit of %d", len(list), maxInitPaths)
		}
		for _, p := range list {
			if err := checkCleanPath("path", p, true); err != nil {
				return err
			}
		}
	}
	if len(c.Volumes) > maxVolumes {
		return invalid("%d volumes exceed the limit of %d", len(c.Volumes), maxVolumes)
	}
	for _, v := range c.Volumes {
		if err := checkString("volume source", v.Source, maxPathLen); err != nil {
			return err
		}
		if !filepath.IsAbs(v.Source) {
			return invalid("volume source %q is not absolute", v.Source)
		}
		if err := checkCleanPath("volume target", v.Target, false); err != nil {
			return err
		}
	}
	return nil
}

// checkCleanPath: p is absolute, as filepath.Clean returns it, and not "/"
// unless rootOK.
func checkCleanPath(what, p string, rootOK bool) error {
	if err := checkString(what, p, maxPathLen); err != nil {
		return err
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || (p == "/" && !rootOK) {
		return invalid("%s %q is not a clean absolute path", what, p)
	}
	return nil
}

// MarshalBinary validates c and encodes it as the init's root message.
func (c *InitConfig) MarshalBinary() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{c.Tty, initTTY}, {c.Loopback, initLoopback}, {c.Restrict, initRestrict}, {c.ReadOnlyRoot, initReadOnlyRoot}} {
		if f.on {
			flags |= f.bit
		}
	}
	b := make([]byte, 0, 512)
	b = append(b, initMagic...)
	b = append(b, initVersion, flags, 0, 0)
	b = appendString(b, c.Overlay)
	b = appendString(b, c.Root)
	b = appendString(b, c.Hostname)
	b = appendString(b, c.Cwd)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Cgroups)))
	for _, cg := range c.Cgroups {
		b = appendString(b, cg.Hierarchy)
		b = appendString(b, cg.Path)
	}
	b = appendList(b, c.MaskedPaths)
	b = appendList(b, c.ReadonlyPaths)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Volumes)))
	for _, v := range c.Volumes {
		b = appendString(b, v.Source)
		b = appendString(b, v.Target)
		var vf uint32
		if v.ReadOnly {
			vf |= volumeReadOnly
		}
		b = binary.LittleEndian.AppendUint32(b, vf)
	}
	if len(b) > maxConfigSize {
		return nil, invalid("encoded size %d exceeds the limit of %d", len(b), maxConfigSize)
	}
	return b, nil
}

// frame prefixes a message with its length.
func frame(data []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(data)), uint32(len(data))), data...)
}

// InitError is a failure a container's init reported, with docker's exit
// code: 125 if the container could not be set up, 126 if the command cannot
// be run, 127 if it was not found.
type InitError struct {
	Code int
	Msg  string
}

func (e *InitError) Error() string { return e.Msg }

// Init is a new container's first process, built by the init constructor:
// it sets up the root described by an InitConfig, reports ready, waits for
// its command (Exec) and becomes it, and the Go runtime never starts in it.
type Init struct {
	// Cmd runs the process. The caller sets Stdin, Stdout, Stderr and
	// SysProcAttr (new namespaces at least: the init changes the mount
	// namespace it runs in), starts it and then calls Started.
	Cmd    *exec.Cmd
	ctl    *os.File // our end of the init's fd 3
	root   []byte   // the root message, until SendRoot
	status *bufio.Reader
	stR    *os.File
	child  []*os.File // the init's ends, closed by Started
}

// NewInit prepares an init that builds c. Once started, the init waits for c
// until SendRoot: it can be started before what it mounts exists. self is a
// binary linking this package, usually "/proc/self/exe".
func NewInit(self string, c *InitConfig) (*Init, error) {
	if !constructorLinked {
		return nil, ErrUnsupported
	}
	data, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("init: config pipe: %w", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("init: status pipe: %w", err)
	}
	in := &Init{
		Cmd: &exec.Cmd{
			Path:       self,
			Args:       []string{"fockker-init"},
			Env:        []string{initEnvFD + "=" + strconv.Itoa(initConfigFD)},
			ExtraFiles: []*os.File{ctlR, stW}, // fds 3 and 4
		},
		ctl:    ctlW,
		root:   frame(data),
		status: bufio.NewReader(stR),
		stR:    stR,
		child:  []*os.File{ctlR, stW},
	}
	// The whole message fits in the pipe: SendRoot never blocks, even on an init that
	// died or was never started.
	if err := ensurePipeCapacity(ctlW, len(in.root)); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// SendRoot sends the init the description of its root, which it then builds:
// the directories it mounts must exist by now. Call it once.
func (in *Init) SendRoot() error {
	if in.ctl == nil || in.root == nil {
		return errors.New("init: root already sent, or the init was closed")
	}
	_, err := in.ctl.Write(in.root)
	in.root = nil
	if err != nil {
		return fmt.Errorf("init: write config: %w", err)
	}
	return nil
}

// Started closes the init's ends of the pipes in this process; call it once
// Cmd.Start has returned, whether it succeeded or not.
func (in *Init) Started() {
	for _, f := range in.child {
		f.Close()
	}
	in.child = nil
}

// Ready waits until the root is built. A reported failure is an *InitError;
// io.EOF means the init died without a word (its exit status tells why).
func (in *Init) Ready() error {
	b, err := in.status.ReadByte()
	if err != nil {
		return err
	}
	if b == 0 {
		return nil
	}
	return in.failure(b)
}

// failure reads the message after a failure report's code byte.
func (in *Init) failure(code byte) error {
	msg, err := in.status.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("init: read report: %w", err)
	}
	return &InitError{Code: int(code), Msg: strings.TrimSuffix(msg, "\n")}
}

// SendCommand sends the init its command (c's Pid, StartTime, Namespaces and
// CgroupDirs describe the init itself and are not used; Tty and Detach must
// be false: the init's session and terminal are set when it is started). The
// init reads it once its root is built, even when it came before, joins its
// cgroups (InitConfig.Cgroups), then runs it: send it only once nothing of
// the container is missing. Call it once.
func (in *Init) SendCommand(c *Config) error {
	if c.Tty || c.Detach {
		return invalid("an init's command takes its terminal and session from the init")
	}
	if in.ctl == nil {
		return errors.New("init: command already sent, or the init was closed")
	}
	data, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = in.ctl.Write(frame(data))
	in.ctl.Close()
	in.ctl = nil
	if errors.Is(err, syscall.EPIPE) {
		// Its reason, if it gave one, is on the status pipe: Ready or Executed read it.
		return fmt.Errorf("init: exited before it read its command (%w)", err)
	}
	if err != nil {
		return fmt.Errorf("init: send the command: %w", err)
	}
	return nil
}

// Executed waits, after Ready, for the command SendCommand sent to run (nil)
// or to fail (*InitError).
func (in *Init) Executed() error {
	// The status pipe is close-on-exec in the init: EOF means the execve happened.
	b, err := in.status.ReadByte()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init: read report: %w", err)
	}
	return in.failure(b)
}

// Close gives up on the init: a process still waiting for its command exits 125.
func (in *Init) Close() {
	in.Started()
	if in.ctl != nil {
		in.ctl.Close()
		in.ctl = nil
	}
	if in.stR != nil {
		in.stR.Close()
		in.stR = nil
	}
}

// Start starts the init with stdin, stdout and stderr (nil means /dev/null) and sys, which
// holds its new namespaces at least; Start sets sys.PidFD. It is Cmd.Start without os/exec
// and os.StartProcess, whose first use in a process checks that pidfds work by cloning a
// child of its own. Started is called.
func (in *Init) Start(stdio [3]*os.File, sys *syscall.SysProcAttr) (*Process, error) {
	defer in.Started()
	files := make([]uintptr, 0, 3+len(in.Cmd.ExtraFiles))
	var null *os.File
	for _, f := range stdio {
		if f == nil {
			if null == nil {
				var err error
				if null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
					return nil, err
				}
				defer null.Close()
			}
			f = null
		}
		files = append(files, f.Fd())
	}
	for _, f := range in.Cmd.ExtraFiles {
		files = append(files, f.Fd())
	}
	pidfd := -1
	attr := *sys
	attr.PidFD = &pidfd
	pid, err := syscall.ForkExec(in.Cmd.Path, in.Cmd.Args, &syscall.ProcAttr{Env: in.Cmd.Env, Files: files, Sys: &attr})
	runtime.KeepAlive(stdio)
	if err != nil {
		return nil, &os.PathError{Op: "fork/exec", Path: in.Cmd.Path, Err: err}
	}
	if pidfd < 0 { // a kernel without CLONE_PIDFD (before 5.2): Process could not signal it
		unix.Kill(pid, unix.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		return nil, fmt.Errorf("fork/exec %s: the kernel returned no pidfd (CLONE_PIDFD needs Linux 5.2)", in.Cmd.Path)
	}
	return &Process{Pid: pid, pidfd: pidfd}, nil
}

// Process is a child started by Init.Start. Signal reaches it through a pidfd, so never
// another process that got its PID once it is gone.
type Process struct {
	Pid    int
	status *syscall.WaitStatus
	mu     sync.Mutex // guards pidfd: Signal and Release may run while Wait blocks
	pidfd  int
}

// Wait waits for the process to exit and reaps it; a later call returns the same status.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	if p.status != nil {
		return *p.status, nil
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(p.Pid, &ws, 0, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return 0, os.NewSyscallError("wait4", err)
		}
	}
	p.status = &ws
	return ws, nil
}

// Signal sends sig; os.ErrProcessDone once the process is gone.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return os.ErrProcessDone
	}
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// Release closes the pidfd; call it once nothing signals the process any more.
func (p *Process) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}
