package container

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
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
	if err := Untar(f, tmp); err != nil {
		return "", fmt.Errorf("image %q: unpack %s: %w", name, archive, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	ok = true
	return dir, nil
}

// Untar unpacks a plain tar stream into dir. No entry may land outside dir: absolute names
// and ".." are refused, and parents are resolved inside dir so that a symlink in the archive
// cannot redirect a later entry to the host.
func Untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rel, err := archivePath(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue
		}
		// The parent is resolved inside dir; the last component is never followed.
		parent, err := securejoin.SecureJoin(dir, filepath.Dir(rel))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		target := filepath.Join(parent, filepath.Base(rel))
		mode := os.FileMode(hdr.Mode).Perm()
		if hdr.Mode&04000 != 0 {
			mode |= os.ModeSetuid
		}
		if hdr.Mode&02000 != 0 {
			mode |= os.ModeSetgid
		}
		if hdr.Mode&01000 != 0 {
			mode |= os.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return err
				}
			}
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg:
			if err := removeExisting(target); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := removeExisting(target); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := archivePath(hdr.Linkname)
			if err != nil {
				return err
			}
			srcPath, err := securejoin.SecureJoin(dir, src)
			if err != nil {
				return err
			}
			if err := removeExisting(target); err != nil {
				return err
			}
			if err := os.Link(srcPath, target); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if err := removeExisting(target); err != nil {
				return err
			}
			m := uint32(mode.Perm())
			switch hdr.Typeflag {
			case tar.TypeChar:
				m |= unix.S_IFCHR
			case tar.TypeBlock:
				m |= unix.S_IFBLK
			default:
				m |= unix.S_IFIFO
			}
			dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
			if err := unix.Mknod(target, m, int(dev)); err != nil {
				return &os.PathError{Op: "mknod", Path: target, Err: err}
			}
		default:
			continue // pax headers and the like carry no file
		}
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(target, mode); err != nil {
				return err
			}
			if hdr.Typeflag != tar.TypeDir {
				if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
					return err
				}
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first changed their parents' mtimes
		if err := os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

// archivePath cleans an entry name and refuses anything that points outside the archive root.
func archivePath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return "", fmt.Errorf("%q: absolute path: %w", name, ErrUnsafeArchive)
	}
	clean := filepath.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q: leaves the archive root: %w", name, ErrUnsafeArchive)
	}
	return clean, nil
}

func removeExisting(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(path)
	}
	return os.Remove(path)
}
