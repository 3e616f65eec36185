// Package smallfile reads and rewrites small state files with few system calls, and keeps
// removed ones as spares to be renamed into place instead of created.
//
// On a disk-backed file system every new file costs an inode allocation (up to a millisecond
// on the ext4 these machines run, which skips every recently freed inode), and os.ReadFile
// adds an fstat, a round of fcntl and epoll_ctl calls and buffers of its own to a read of a
// few hundred bytes.
package smallfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// Read returns the whole content of a small file (or a virtual one, read until EOF).
func Read(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 1024)
	for {
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
		if len(b) == cap(b) {
			b = slices.Grow(b, len(b))
		}
	}
}

// Overwrite replaces the content of the existing regular file at path with data, in place:
// cut to data's length if it was longer, never truncated to nothing first (ext4 writes a file
// truncated to zero out when it is closed). path itself is not followed if it is a symlink.
func Overwrite(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	err = overwrite(fd, path, data)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: path, Err: cerr}
	}
	return err
}

func overwrite(fd int, path string, data []byte) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &os.PathError{Op: "overwrite", Path: path, Err: errors.New("not a regular file")}
	}
	if n, err := unix.Pwrite(fd, data, 0); err != nil || n != len(data) {
		if err == nil {
			err = unix.EIO
		}
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	if st.Size > int64(len(data)) {
		if err := unix.Ftruncate(fd, int64(len(data))); err != nil {
			return &os.PathError{Op: "truncate", Path: path, Err: err}
		}
	}
	return nil
}

// Keep renames the file at path to spare unless spare exists (making spare's directory if it
// is missing and path is there), and reports whether it did.
func Keep(path, spare string) bool {
	err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, spare, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOENT) && Exists(path) && os.Mkdir(filepath.Dir(spare), 0o755) == nil {
		err = unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, spare, unix.RENAME_NOREPLACE)
	}
	return err == nil
}

// Exists reports whether there is a directory entry at path (not following a symlink).
func Exists(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil
}
