// Package atomicfile replaces files so that readers see the old content or the new, never a
// mix, and a crash leaves one of the two.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Durability says how far a write must reach before it returns.
type Durability int

const (
	// Replace only renames a complete temporary file into place: safe against a crash of
	// the writer, not against a crash of the machine, after which some file systems may
	// hold an empty or cut file under the new name. For hints, and for state that does not
	// outlive the machine's processes (container records: see container.Store).
	Replace Durability = iota
	// Synced fsyncs the data before the rename: after a power loss the file holds the old
	// or the new content, never a torn one.
	Synced
	// Durable also fsyncs the directory, so the new content itself survives a power loss.
	Durable
)

// Write replaces path with data (mode applies to the new file) through a temporary file in
// the same directory, which is removed again on any failure.
func Write(path string, data []byte, mode os.FileMode, d Durability) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if d >= Synced {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if d == Replace {
		return replace(f.Name(), path)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d >= Durable {
		return SyncDir(dir)
	}
	return nil
}

// replace moves the complete file tmp to path. A regular file already at path is exchanged
// with tmp (renameat2 RENAME_EXCHANGE), and its old content then removed under tmp's name:
// a plain rename over an existing file makes ext4 (auto_da_alloc) start writing the new
// file's data out on the spot, which the Replace durability does not ask for and which costs
// a few hundred microseconds per record write on a disk-backed state root. Readers of path
// see the old or the new file either way. Anything else at path, or a file system without
// the exchange, gets the plain rename.
func replace(tmp, path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
		if err == nil {
			if err := os.Remove(tmp); err != nil {
				return fmt.Errorf("replaced %s, but its old copy stays: %w", path, err)
			}
			return nil
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOENT) {
			return &os.LinkError{Op: "renameat2 exchange", Old: tmp, New: path, Err: err}
		}
	}
	return os.Rename(tmp, path)
}

// SyncDir fsyncs a directory, making the renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}
