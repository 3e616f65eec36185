package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// createLayers makes a container's two overlay directories, each marked with the state root
// it belongs to (see Prune), and the shared mount point. Each must be new: a leftover with the
// same name belongs to something else and is never reused or deleted here. Callers make them
// in the background (a goroutine each would cost more in wake-ups than the two take).
func createLayers(roots Roots, name string) error {
	if err := os.MkdirAll(roots.MountPoint(), 0o711); err != nil {
		return err
	}
	var made [2]bool
	var errs [2]error
	made[0], errs[0] = createLayer(roots.UpperDir(name), roots.State)
	if errs[0] == nil {
		made[1], errs[1] = createLayer(roots.WorkDir(name), roots.State)
	}
	err := errors.Join(errs[:]...)
	if err != nil {
		for i, d := range [...]string{roots.UpperDir(name), roots.WorkDir(name)} {
			if made[i] {
				os.RemoveAll(d)
			}
		}
	}
	return err
}

// createLayer makes one new layer directory and marks it; made says whether the directory
// was made (and is to be removed on failure).
func createLayer(dir, stateRoot string) (made bool, err error) {
	if err := mkdirTop(filepath.Dir(dir)); err != nil {
		return false, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, fmt.Errorf("%s: %w", dir, ErrLayerExists)
		}
		return false, err
	}
	return true, markLayer(dir, stateRoot)
}

// mkdirTop makes dir (and its parents) if it is missing, flagged as the top of unrelated
// directory trees (FS_TOPDIR_FL, chattr +T): the state root, writeLayer and workLayer. ext4
// then puts each directory made in it in a block group of its own choosing, spread over the
// disk, instead of in its parent's group, and the inodes made under that directory follow.
// This matters on ext4 without a journal, where a new inode skips every inode of its group
// freed in the last minutes, one look-up each: the overlay makes and removes seven inodes in
// its work directory at every mount, a run replaces its record twice, and with all of that in
// one group making an inode took up to 1 ms after a few hundred runs. A file system that has
// no such flag ignores it; an existing directory is left as it is.
func mkdirTop(dir string) error {
	err := os.Mkdir(dir, 0o711)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		err = os.MkdirAll(dir, 0o711)
	}
	if err != nil {
		return err
	}
	return setTopDir(dir)
}

// setTopDir sets FS_TOPDIR_FL on dir where the file system knows the flag.
func setTopDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopDirFlag))
	}
	switch {
	case err == nil, errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return nil
	}
	return &os.PathError{Op: "set the top directory flag of", Path: dir, Err: err}
}

// fsTopDirFlag is FS_TOPDIR_FL of linux/fs.h.
const fsTopDirFlag = 0x00020000

// removeLayers deletes a container's overlay directories (and the mount point of its own that
// an earlier version made). The overlay itself is mounted only inside the container's mount
// namespace and went away with it, so there is nothing to unmount here; a directory that is
// already gone is fine. The work directory goes with removeWorkDir, beside the others.
func removeLayers(roots Roots, name string) error {
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() { errs[2] = removeWorkDir(roots.WorkDir(name)) })
	errs[0] = removeDir(roots.legacyMergedDir(name))
	errs[1] = removeDir(roots.UpperDir(name))
	wg.Wait()
	return errors.Join(errs[:]...)
}

// removeDir removes dir and what it holds; one that is gone is fine.
func removeDir(dir string) error {
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return os.RemoveAll(dir)
}

// removeWorkDir removes an overlay's work directory dir. What an unmounted overlay leaves in
// it ("work" and, with the volatile option, "work/incompat/volatile" holding the empty file
// "dirty") goes with one unlink(2) or rmdir(2) each, relative to the directory, deepest
// first; anything else with os.RemoveAll. (On the machine of BENCHMARKS.md each rmdir waits
// for the disk to discard the directory's block, ~0.13 ms; issued in parallel from
// goroutines they took longer, the device or the scheduler serialising them anyway.)
func removeWorkDir(dir string) error {
	if fd, err := openDir(dir); err == nil {
		if err := removeVolatileMarker(fd); err == nil || errors.Is(err, unix.ENOENT) {
			_ = unix.Unlinkat(fd, "work", unix.AT_REMOVEDIR) // anything else: RemoveAll below
		}
		unix.Close(fd)
	}
	return removeDir(dir)
}

// openDir opens dir (not a symlink) to work relative to it.
func openDir(dir string) (int, error) {
	return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// dropVolatileMarker is removeVolatileMarker in the work directory dir.
func dropVolatileMarker(dir string) error {
	fd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return removeVolatileMarker(fd)
}

// removeVolatileMarker removes what a volatile overlay leaves in its work directory (open at
// fd) to mark itself: "work/incompat/volatile" holding the empty file "dirty". A part already
// gone is skipped. The overlay makes it when it is mounted and never looks at it again (a
// later mount on the same work directory would refuse to start while it exists), so it may go
// while the overlay is in use.
func removeVolatileMarker(fd int) error {
	err := unix.Unlinkat(fd, "work/incompat/volatile/dirty", 0)
	for _, sub := range [...]string{"work/incompat/volatile", "work/incompat"} {
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		err = unix.Unlinkat(fd, sub, unix.AT_REMOVEDIR)
	}
	return err
}

// mountErr wraps a mount failure with what was being mounted where.
func mountErr(what, target string, err error) error {
	return fmt.Errorf("mount %s on %s: %w", what, target, os.NewSyscallError("mount", err))
}
