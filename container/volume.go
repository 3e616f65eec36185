package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	made[0], errs[0] = createLayer(roots.UpperDir(name), roots.State, true)
	if errs[0] == nil {
		made[1], errs[1] = createLayer(roots.WorkDir(name), roots.State, false)
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
// was made (and is to be removed on failure). With spare, it takes its parent's spare if there
// is one (see giveBackLayer): on a file system that frees directories slowly, renaming an
// empty one is cheaper than making one.
func createLayer(dir, stateRoot string, spare bool) (made bool, err error) {
	parent := filepath.Dir(dir)
	if spare {
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(parent, spareLayer), unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			return true, markLayer(dir, stateRoot)
		case errors.Is(err, unix.EEXIST):
			return false, fmt.Errorf("%s: %w", dir, ErrLayerExists)
		}
	}
	if err := mkdirTop(parent); err != nil {
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

// spareLayer is the name, in writeLayer, of an empty upper layer directory a removal kept for
// the next container (see giveBackLayer). Work directories are never kept: the overlay makes
// and removes inodes in its work directory at every mount, and a kept one would gather all
// of them in one block group (see makeLayerParent). Prune removes it.
const spareLayer = ".spare"

// removeLayerSpares removes the spare layer directories that carry this installation's mark.
// One that a run takes meanwhile is gone, which is fine.
func removeLayerSpares(roots Roots) error {
	var errs []error
	for _, sub := range [...]string{"writeLayer", "workLayer"} {
		p := filepath.Join(roots.Image, sub, spareLayer)
		if !ownedLayer(p, roots.State) {
			continue
		}
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "rmdir", Path: p, Err: err})
		}
	}
	return errors.Join(errs...)
}

// overlayUUIDXattr is where overlayfs keeps the identity it gives an upper directory. A
// spare keeps it, and the next container's overlay takes it over: removing it freed the
// extended attribute block it shares with the owner mark, one more synchronous discard on
// this machine's disk.
const overlayUUIDXattr = "trusted.overlay.uuid"

// removeLayers deletes a container's overlay directories (and the mount point of its own that
// an earlier version made). The overlay itself is mounted only inside the container's mount
// namespace and went away with it, so there is nothing to unmount here; a directory that is
// already gone is fine. They are removed at the same time. An upper layer that is exactly as
// createLayer made it is kept as writeLayer's spare (giveBackLayer); the work directory goes
// with removeWorkDir.
func removeLayers(roots Roots, name string) error {
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() { errs[2] = removeWorkDir(roots.WorkDir(name)) })
	errs[0] = removeDir(roots.legacyMergedDir(name))
	if !giveBackLayer(roots.UpperDir(name)) {
		errs[1] = removeDir(roots.UpperDir(name))
	}
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

// giveBackLayer renames dir to its parent's spare if it is exactly what createLayer makes
// (empty, mode 0755, owned by root, no extended attribute but the owner mark and the
// overlay's identity) and there is no spare yet. It reports whether it did.
func giveBackLayer(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode != unix.S_IFDIR|0o755 || st.Uid != 0 || st.Gid != 0 {
		return false
	}
	buf := make([]byte, 512)
	if !emptyDir(fd, buf) {
		return false
	}
	n, err := unix.Flistxattr(fd, buf)
	if err != nil {
		return false
	}
	for _, x := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		switch x {
		case layerOwnerXattr, overlayUUIDXattr:
		default:
			return false
		}
	}
	parent := filepath.Dir(dir)
	return unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, filepath.Join(parent, spareLayer), unix.RENAME_NOREPLACE) == nil
}

// emptyDir reports whether the directory open as fd holds nothing but "." and "..", reading
// it with buf.
func emptyDir(fd int, buf []byte) bool {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return false
		}
		if n == 0 {
			return true
		}
		if _, added, _ := unix.ParseDirent(buf[:n], -1, nil); added > 0 { // "." and ".." are skipped
			return false
		}
	}
}

// removeWorkDir removes an overlay's work directory dir. What an unmounted overlay leaves in
// it ("work" and, with the volatile option, "work/incompat/volatile" holding the empty file
// "dirty") goes with one unlink(2) or rmdir(2) each, relative to the directory, deepest
// first; anything else with os.RemoveAll. (On the machine of BENCHMARKS.md each rmdir waits
// for the disk to discard the directory's block, ~0.13 ms; issued in parallel from
// goroutines they took longer, the device or the scheduler serialising them anyway.)
func removeWorkDir(dir string) error {
	if fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		err := unix.Unlinkat(fd, "work/incompat/volatile/dirty", 0)
		for _, sub := range [...]string{"work/incompat/volatile", "work/incompat", "work"} {
			if err != nil && !errors.Is(err, unix.ENOENT) {
				break // not what an overlay leaves: RemoveAll below
			}
			err = unix.Unlinkat(fd, sub, unix.AT_REMOVEDIR)
		}
		unix.Close(fd)
	}
	return removeDir(dir)
}

// mountErr wraps a mount failure with what was being mounted where.
func mountErr(what, target string, err error) error {
	return fmt.Errorf("mount %s on %s: %w", what, target, os.NewSyscallError("mount", err))
}
