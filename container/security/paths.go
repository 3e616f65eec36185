package security

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MaskedPaths are hidden from a container that is not privileged, as docker does: a file
// gets /dev/null bound over it, a directory an empty read-only tmpfs.
func MaskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// ReadonlyPaths are bound read-only in a container that is not privileged, as docker does.
func ReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// RestrictPaths masks MaskedPaths and write-protects ReadonlyPaths in the calling process's
// mount namespace and root (a container's init after pivot_root). Paths the kernel does not
// have are skipped.
func RestrictPaths() error {
	for _, p := range ReadonlyPaths() {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	for _, p := range MaskedPaths() {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	return nil
}

func mountErr(what, target string, err error) error {
	return fmt.Errorf("%s %s: %w", what, target, os.NewSyscallError("mount", err))
}

// maskPath binds /dev/null over a file, or mounts an empty read-only tmpfs on a directory.
func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR):
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, ""); err != nil {
			return mountErr("mask", p, err)
		}
		return nil
	}
	return mountErr("mask", p, err)
}

// readonlyPath binds p onto itself and makes that bind read-only.
func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return mountErr("bind", p, err)
	}
	return remountReadOnly(p)
}

// remountReadOnly makes the mount at p read-only, keeping the nosuid, nodev and noexec flags
// it has.
func remountReadOnly(p string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: p, Err: err}
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct {
		st int64
		ms uintptr
	}{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC}} {
		if st.Flags&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return mountErr("remount read-only", p, err)
	}
	return nil
}

// RemountRootReadOnly makes the calling process's root mount read-only. Mounts below it
// (volumes, /dev, /proc, /sys) keep their own modes.
func RemountRootReadOnly() error { return remountReadOnly("/") }
