package container

import (
	"errors"
	"fmt"
	"os"

	"github.com/FishingRodd/fockker/container/image"
	"golang.org/x/sys/unix"
)

// EnsureImage returns the directory of an image's root filesystem. An image is either the
// directory <image-root>/<name> or the archive <image-root>/<name>.tar, which is unpacked
// once, atomically (to a temporary directory renamed into place, under a lock on the
// archive), the first time a container uses it.
func EnsureImage(roots Roots, name string) (string, error) {
	if err := ValidateName("image", name); err != nil {
		return "", err
	}
	dir := roots.ImageDir(name)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("image %q: %s is not a directory: %w", name, dir, ErrImageNotFound)
		}
		return dir, nil
	}
	archive := dir + ".tar"
	f, err := os.Open(archive)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("image %q: neither %s nor %s exists: %w", name, dir, archive, ErrImageNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return "", &os.PathError{Op: "flock", Path: archive, Err: err}
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // another process unpacked it while we waited
	}
	tmp, err := os.MkdirTemp(roots.Image, ".unpack-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := image.Untar(f, tmp); err != nil {
		return "", fmt.Errorf("image %q: unpack %s: %w", name, archive, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	ok = true
	return dir, nil
}
