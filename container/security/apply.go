package security

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// Apply restricts the calling thread to p, running as id. Everything it changes is
// per-thread, so the caller must have locked its goroutine to the thread and must call
// execve from it right after; other threads of the process are not changed and die at
// execve. The order is runc's:
//
//  1. drop the bounding set (needs CAP_SETPCAP, still held);
//  2. without no_new_privs, load the seccomp filter now (that needs CAP_SYS_ADMIN, which
//     step 4 may drop); the filter must then allow the calls of the following steps, as
//     docker's does;
//  3. switch groups and user, keeping the permitted set (PR_SET_KEEPCAPS);
//  4. set the effective, permitted, inheritable and ambient sets;
//  5. set no_new_privs and, with it, load the seccomp filter as the last step.
func (p *Process) Apply(id Identity) error {
	last, err := capability.LastCap()
	if err != nil {
		return err
	}
	sets := p.CapSets(id.UID)
	if err := dropBounding(sets.Bounding, last); err != nil {
		return err
	}
	if p.Seccomp != nil && !p.NoNewPrivileges {
		if err := p.Seccomp.Load(); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_KEEPCAPS)", err)
	}
	if err := setIdentity(id); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_KEEPCAPS)", err)
	}
	if err := setCaps(sets); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)
		}
		if p.Seccomp != nil {
			if err := p.Seccomp.Load(); err != nil {
				return err
			}
		}
	}
	return nil
}

// setIdentity sets the calling thread's supplementary groups, then its real, effective and
// saved group and user ids, with raw syscalls that change only this thread (as runc does):
// the thread that calls execve is the one that counts.
func setIdentity(id Identity) error {
	gids := id.AdditionalGIDs
	var ptr unsafe.Pointer
	if len(gids) > 0 {
		ptr = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(ptr), 0); e != 0 {
		return fmt.Errorf("setgroups %v: %w", gids, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(id.GID), uintptr(id.GID), uintptr(id.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", id.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id.UID), uintptr(id.UID), uintptr(id.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", id.UID, e)
	}
	return nil
}
