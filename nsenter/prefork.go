package nsenter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The prefork helper's request; prefork.c and nsenter.h document it, main.go checks that
// both sides agree.
const (
	preforkMagic   = 0x46504b46 // "FKPF"
	preforkTTY     = 0x1
	preforkHostNet = 0x2
	preforkCgroup  = 0x4
)

// The names (/proc/PID/comm) of the prefork helper and of an init it cloned, until the init
// execs its command: both keep their creator's command line and environment meanwhile.
const (
	HelperName = "fockker-prefork"
	InitName   = "fockker-init"
)

// WatcherEnv=1 in its environment marks a detached container's watcher, which gets a prefork
// helper as `run` does.
const WatcherEnv = "_FOCKKER_WATCH"

// Prefork is the helper the constructor forked for this process before the Go runtime
// started (prefork.c): it holds new mount, UTS, IPC, PID and network namespaces, made while
// the runtime started, and clones a container's init into them on request.
type Prefork struct {
	sock *os.File
	pid  int
}

// TakePrefork returns this process's prefork helper, once; nil if it has none (the command
// line was not a `run` or a watcher's, or the fork failed).
func TakePrefork() *Prefork {
	fd, pid := takePrefork()
	if fd < 0 {
		return nil
	}
	return &Prefork{sock: os.NewFile(uintptr(fd), "prefork"), pid: pid}
}

// Close gives the helper up: it exits and its namespaces go with it. It is reaped.
func (p *Prefork) Close() {
	if p.sock == nil {
		return
	}
	p.sock.Close()
	p.sock = nil
	reap(p.pid)
}

// reap waits for our child pid to exit, whatever its status.
func reap(pid int) {
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// PreforkOptions are what Init.StartPreforked needs beyond the init's stdio.
type PreforkOptions struct {
	Tty     bool     // stdin becomes the init's controlling terminal
	HostNet bool     // the init stays in this process's network namespace
	Cgroup  *os.File // the cgroup v2 directory to clone the init into, or nil
}

// ErrNoInit wraps a failure of StartPreforked after which certainly no init exists: the
// request never reached the helper, or the helper refused it. The caller may still Start it.
var ErrNoInit = errors.New("no init was cloned")

// StartPreforked is Start through the helper p: the init is cloned in p's namespaces (new
// mount, UTS, IPC, PID and, unless o.HostNet, network ones), with a session of its own and
// SIGKILL as its parent-death signal, as this process's child. p is used up either way. An
// error that wraps ErrNoInit leaves in untouched.
func (in *Init) StartPreforked(p *Prefork, stdio [3]*os.File, o PreforkOptions) (proc *Process, err error) {
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	var flags uint32
	if o.Tty {
		flags |= preforkTTY
	}
	if o.HostNet {
		flags |= preforkHostNet
	}
	fds, closeNull, err := in.childFDs(stdio)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", err, ErrNoInit)
	}
	defer closeNull()
	if o.Cgroup != nil {
		flags |= preforkCgroup
		fds = append(fds, int(o.Cgroup.Fd()))
	}
	req := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, preforkMagic), flags)
	sock := int(p.sock.Fd())
	err = unix.Sendmsg(sock, req, unix.UnixRights(fds...), nil, 0)
	runtime.KeepAlive(stdio) // their fds were sent by number
	runtime.KeepAlive(o.Cgroup)
	if err != nil {
		return nil, fmt.Errorf("prefork helper: send request: %w (%w)", err, ErrNoInit)
	}
	var reply [4]byte
	n, _, _, _, err := unix.Recvmsg(sock, reply[:], nil, 0)
	if err != nil {
		return nil, fmt.Errorf("prefork helper: read reply: %w", err)
	}
	if n != len(reply) {
		return nil, errors.New("prefork helper: exited without a reply")
	}
	pid := int(int32(binary.LittleEndian.Uint32(reply[:])))
	if pid <= 0 {
		return nil, fmt.Errorf("prefork helper: clone the init: %w (%w)", syscall.Errno(-pid), ErrNoInit)
	}
	// Our child (CLONE_PARENT), so nobody else can reap it: the pid names it until we do.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		reap(pid)
		return nil, fmt.Errorf("prefork helper: pidfd of the init: %w", err)
	}
	in.Started()
	// The helper exits now; Process.ReapHelper reaps it later, off the path to the init.
	p.sock.Close()
	p.sock = nil
	return &Process{Pid: pid, pidfd: pidfd, helper: p.pid}, nil
}
