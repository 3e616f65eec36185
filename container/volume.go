package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// createLayers makes a container's three overlay directories, each marked with the state root
// it belongs to (see Prune). Each must be new: a leftover with the same name belongs to
// something else and is never reused or deleted here.
func createLayers(roots Roots, name string) (err error) {
	dirs := []string{roots.UpperDir(name), roots.WorkDir(name), roots.MergedDir(name)}
	var made []string
	defer func() {
		if err != nil {
			for _, d := range made {
				os.RemoveAll(d)
			}
		}
	}()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Dir(d), 0o711); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", d, ErrLayerExists)
			}
			return err
		}
		made = append(made, d)
		if err := markLayer(d, roots.State); err != nil {
			return err
		}
	}
	return nil
}

// removeLayers deletes a container's overlay directories. The overlay itself is mounted only
// inside the container's mount namespace and went away with it, so there is nothing to
// unmount here; a directory that is already gone is fine.
func removeLayers(roots Roots, name string) error {
	var errs []error
	for _, d := range []string{roots.MergedDir(name), roots.UpperDir(name), roots.WorkDir(name)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountErr wraps a mount failure with what was being mounted where.
func mountErr(what, target string, err error) error {
	return fmt.Errorf("mount %s on %s: %w", what, target, os.NewSyscallError("mount", err))
}
