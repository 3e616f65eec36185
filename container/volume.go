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
// same name belongs to something else and is never reused or deleted here. The two, in
// different parents, are made at the same time.
func createLayers(roots Roots, name string) error {
	if err := os.MkdirAll(roots.MountPoint(), 0o711); err != nil {
		return err
	}
	dirs := []string{roots.UpperDir(name), roots.WorkDir(name)}
	made := make([]bool, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Go(func() { made[i], errs[i] = createLayer(d, roots.State) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		for i, d := range dirs {
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
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
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

// removeLayers deletes a container's overlay directories (and the mount point of its own that
// an earlier version made). The overlay itself is mounted only inside the container's mount
// namespace and went away with it, so there is nothing to unmount here; a directory that is
// already gone is fine. They are removed at the same time.
func removeLayers(roots Roots, name string) error {
	dirs := []string{roots.legacyMergedDir(name), roots.UpperDir(name), roots.WorkDir(name)}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Go(func() { errs[i] = removeLayer(d) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removeLayer removes one layer directory. What an overlay that wrote nothing leaves (an empty
// upper directory; in the work directory, once unmounted, "work" and, with the volatile
// option, its "incompat/volatile" marker) goes with one rmdir(2) each; anything else with
// os.RemoveAll.
func removeLayer(dir string) error {
	err := unix.Rmdir(dir)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		for _, sub := range [...]string{"work/incompat/volatile", "work/incompat", "work/work", "work"} {
			if err := unix.Rmdir(filepath.Join(dir, sub)); err != nil && !errors.Is(err, unix.ENOENT) {
				break
			}
		}
		if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
	}
	return os.RemoveAll(dir)
}

// mountErr wraps a mount failure with what was being mounted where.
func mountErr(what, target string, err error) error {
	return fmt.Errorf("mount %s on %s: %w", what, target, os.NewSyscallError("mount", err))
}
