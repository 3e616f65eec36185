package cgroup

// Loading the device filter into the kernel and attaching it to a cgroup v2
// directory with bpf(2), as runc's devices package does for a new cgroup.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// progLoadAttempts bounds the retries of a BPF_PROG_LOAD that the
	// verifier gave up with EAGAIN because a signal arrived (kernel 4.20+).
	progLoadAttempts = 30
	// The verifier log buffer of a failed load: the first try has
	// minLogSize, and each ENOSPC (log too long) retries 8 times larger up
	// to maxLogSize (kernels before 5.2 refuse more than UINT_MAX >> 8).
	minLogSize = 64 << 10
	maxLogSize = 16<<20 - 1
)

// attachDeviceFilter loads prog as a BPF_PROG_TYPE_CGROUP_DEVICE program and
// attaches it to the cgroup v2 directory dir with BPF_F_ALLOW_MULTI, so that
// it runs after the programs of the ancestors (a device access needs every
// one of them to allow it). dir must be a cgroup this package has just made:
// no program of ours can already be attached to it, so, unlike runc when it
// updates a cgroup, there are none to query, replace or detach. The kernel
// keeps the program alive for as long as it is attached: its fd is closed
// before returning.
func attachDeviceFilter(dir string, prog []insn) error {
	dirFD, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dirFD)
	progFD, err := loadDeviceProgram(encodeProgram(prog))
	if err != nil {
		return fmt.Errorf("load the device filter (bpf BPF_PROG_LOAD): %w", err)
	}
	defer unix.Close(progFD)
	// struct bpf_attr for BPF_PROG_ATTACH, up to attach_flags (the kernel
	// zero-fills the fields after the size given).
	attr := struct {
		targetFD, progFD, attachType, attachFlags uint32
	}{uint32(dirFD), uint32(progFD), unix.BPF_CGROUP_DEVICE, unix.BPF_F_ALLOW_MULTI}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return fmt.Errorf("attach the device filter to %s (bpf BPF_PROG_ATTACH): %w", dir, err)
	}
	return nil
}

// loadDeviceProgram loads code (encoded instructions) as a
// BPF_PROG_TYPE_CGROUP_DEVICE program and returns its fd (close-on-exec).
// When the kernel refuses it, the load is tried again with a verifier log,
// whose text ends the error.
func loadDeviceProgram(code []byte) (int, error) {
	license := []byte(deviceBPFLicense + "\x00")
	// struct bpf_attr for BPF_PROG_LOAD, up to log_buf; the pointers are
	// pinned: the kernel reads them, the garbage collector cannot see them.
	attr := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
	}{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(code) / insnSize),
		insns:    uint64(uintptr(unsafe.Pointer(unsafe.SliceData(code)))),
		license:  uint64(uintptr(unsafe.Pointer(unsafe.SliceData(license)))),
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(unsafe.SliceData(code))
	pin.Pin(unsafe.SliceData(license))
	load := func() (int, error) {
		for attempt := 1; ; attempt++ {
			fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
			if !errors.Is(err, unix.EAGAIN) || attempt == progLoadAttempts {
				return fd, err
			}
		}
	}

	fd, err := load()
	if errors.Is(err, unix.EPERM) {
		// Kernels before 5.11 charge programs to RLIMIT_MEMLOCK of the
		// user: try again with the limit raised, for the load only.
		if restore := raiseMemlock(); restore != nil {
			fd, err = load()
			restore()
		}
	}
	if err == nil {
		return fd, nil
	}
	attr.logLevel = 1
	for size := minLogSize; ; size = min(8*size, maxLogSize) {
		log := make([]byte, size)
		pin.Pin(unsafe.SliceData(log))
		attr.logSize, attr.logBuf = uint32(size), uint64(uintptr(unsafe.Pointer(unsafe.SliceData(log))))
		fd, lerr := load()
		if lerr == nil {
			// Refused once, then accepted: nothing to report.
			return fd, nil
		}
		if errors.Is(lerr, unix.ENOSPC) && size < maxLogSize {
			continue
		}
		if n := bytes.IndexByte(log, 0); n > 0 {
			return -1, fmt.Errorf("%w: verifier log: %s", err, bytes.TrimRight(log[:n], "\n"))
		}
		return -1, err
	}
}

// raiseMemlock lifts RLIMIT_MEMLOCK's soft limit to its hard limit (never above it: that
// would take CAP_SYS_RESOURCE) and returns the function that puts the old limit back; nil if it
// cannot be raised.
func raiseMemlock() (restore func()) {
	var old unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old) != nil || old.Cur >= old.Max {
		return nil
	}
	raised := unix.Rlimit{Cur: old.Max, Max: old.Max}
	if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &raised) != nil {
		return nil
	}
	return func() { _ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old) }
}

// bpf calls bpf(2) and returns the fd or value it returns. An fd of 0 is
// moved: bpf(2) reads fd 0 in an attr as "none".
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, os.NewSyscallError("bpf", errno)
	}
	fd := int(r)
	if fd == 0 && cmd == unix.BPF_PROG_LOAD {
		nfd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 1)
		unix.Close(0)
		if err != nil {
			return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
		}
		fd = nfd
	}
	return fd, nil
}
