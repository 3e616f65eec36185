package image

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

// Whiteout markers of the image spec (OCI image-spec layer.md, from aufs): ".wh.NAME" deletes
// NAME from the layers below, ".wh..wh..opq" hides everything the layers below have in its
// directory.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = whiteoutPrefix + whiteoutPrefix
	whiteoutOpaque = whiteoutMeta + ".opq"
)

// Untar unpacks a plain tar stream (a root filesystem, as `export` writes it) into dir. Entry
// names are taken literally, ".wh." files included. See ApplyLayer for the safety rules.
func Untar(r io.Reader, dir string) error {
	return extract(r, dir, false)
}

// ApplyLayer applies one image layer, an uncompressed tar stream, onto dir, which holds the
// layers below it: entries replace what is there, ".wh.NAME" removes NAME and ".wh..wh..opq"
// empties its directory of everything this layer did not itself bring.
//
// No entry may land outside dir: absolute names and ".." are refused with ErrUnsafeArchive, a
// hard link must point inside the archive, and every parent is resolved inside dir as if dir
// were the root, so a symlink in the archive (or below it) cannot redirect a later entry to
// the host. Regular files are created with O_EXCL|O_NOFOLLOW. Ownership, modes (setuid,
// setgid, sticky), modification times and file capabilities are kept when running as root;
// device nodes are made only by root and skipped where the kernel does not permit them.
func ApplyLayer(r io.Reader, dir string) error {
	return extract(r, dir, true)
}

type dirTime struct {
	path  string
	mtime time.Time
}

// extractor holds the state of one extraction.
type extractor struct {
	dir   string
	root  bool // running as root: ownership, devices and capabilities are ours to set
	layer bool // whiteouts are markers, not files
	// plainOnly refuses everything but directories and regular files (an OCI layout's blobs
	// are read by path: a link could make a host file one).
	plainOnly bool
	written   map[string]bool // where this stream's entries landed: an opaque marker keeps them
	dirs      []dirTime
}

func extract(r io.Reader, dir string, layer bool) error {
	x := &extractor{dir: dir, root: os.Geteuid() == 0, layer: layer, written: map[string]bool{}}
	return x.run(r)
}

func (x *extractor) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	// Children changed their parents' mtimes: set directories' times last, deepest first.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// archivePath cleans an entry name and refuses anything that points outside the archive root.
func archivePath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%q: empty or invalid name: %w", name, ErrUnsafeArchive)
	}
	if filepath.IsAbs(name) {
		return "", fmt.Errorf("%q: absolute path: %w", name, ErrUnsafeArchive)
	}
	clean := filepath.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q: leaves the archive root: %w", name, ErrUnsafeArchive)
	}
	return clean, nil
}

// resolve returns where rel lands inside dir: its parent resolved (symlinks followed, but
// never out of dir) and its last component not followed.
func (x *extractor) resolve(rel string) (string, error) {
	parent, err := securejoin.SecureJoin(x.dir, filepath.Dir(rel))
	if err != nil {
		return "", fmt.Errorf("%s: %w", rel, err)
	}
	return filepath.Join(parent, filepath.Base(rel)), nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // metadata the reader has already applied
	}
	rel, err := archivePath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil // the root itself: dir is ours and keeps its own mode
	}
	if x.plainOnly && hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%q: only directories and regular files belong here: %w", hdr.Name, ErrUnsafeArchive)
	}
	base := filepath.Base(rel)
	if x.layer && strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(rel, base)
	}
	target, err := x.resolve(rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	x.written[target] = true

	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			if err := os.Remove(target); err != nil {
				return err
			}
		}
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		x.dirs = append(x.dirs, dirTime{target, hdr.ModTime})
	case tar.TypeReg, '\x00': // '\x00' is the old TypeRegA
		if err := removeExisting(target); err != nil {
			return err
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return fmt.Errorf("%s: %w", rel, err)
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
		return x.hardlink(rel, target, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		made, err := x.mknod(target, hdr)
		if err != nil || !made {
			return err
		}
	default:
		return fmt.Errorf("%q: unsupported tar entry type %q: %w", hdr.Name, hdr.Typeflag, ErrUnsafeArchive)
	}
	return x.attributes(target, hdr)
}

// whiteout applies a ".wh." marker of a layer.
func (x *extractor) whiteout(rel, base string) error {
	parentRel := filepath.Dir(rel)
	parent, err := securejoin.SecureJoin(x.dir, parentRel)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if base == whiteoutOpaque {
		// Everything below this directory that this layer did not bring itself goes.
		ents, err := os.ReadDir(parent)
		if errors.Is(err, os.ErrNotExist) {
			return os.MkdirAll(parent, 0o755)
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if x.written[filepath.Join(parent, e.Name())] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other aufs metadata (.wh..wh.plnk and the like) carries no file
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%q: whiteout of no file: %w", rel, ErrUnsafeArchive)
	}
	// The whited-out name itself is never followed: a symlink is removed, not its target.
	return removeExisting(filepath.Join(parent, name))
}

// hardlink links target to an earlier entry. The source is resolved like any entry: its
// parents inside dir, its last component not followed, so the link can only ever name a file
// that is inside dir.
func (x *extractor) hardlink(rel, target string, hdr *tar.Header) error {
	srcRel, err := archivePath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link %q: %w", hdr.Name, err)
	}
	if srcRel == "." || srcRel == rel {
		return fmt.Errorf("hard link %q to %q: %w", hdr.Name, hdr.Linkname, ErrUnsafeArchive)
	}
	src, err := x.resolve(srcRel)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("hard link %q: source %q: %w", hdr.Name, hdr.Linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link %q to directory %q: %w", hdr.Name, hdr.Linkname, ErrUnsafeArchive)
	}
	if err := removeExisting(target); err != nil {
		return err
	}
	// The inode keeps the source's owner, mode and times: a link header changes nothing.
	return os.Link(src, target)
}

// mknod makes a FIFO, or a device node when running as root and the kernel permits it; it
// reports whether it made anything.
func (x *extractor) mknod(target string, hdr *tar.Header) (bool, error) {
	m := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		m |= unix.S_IFCHR
	case tar.TypeBlock:
		m |= unix.S_IFBLK
	default:
		m |= unix.S_IFIFO
	}
	device := hdr.Typeflag != tar.TypeFifo
	if device && !x.root {
		return false, nil
	}
	if err := removeExisting(target); err != nil {
		return false, err
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknod(target, m, int(dev)); err != nil {
		if device && errors.Is(err, unix.EPERM) {
			return false, nil // e.g. in a user namespace: not permitted here
		}
		return false, &os.PathError{Op: "mknod", Path: target, Err: err}
	}
	return true, nil
}

// attributes gives a new entry its owner, mode, capabilities and times from the header. chown
// comes first: it clears setuid and setgid bits, which chmod then sets.
func (x *extractor) attributes(target string, hdr *tar.Header) error {
	if x.root {
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(target, uint32(hdr.Mode&0o7777)); err != nil {
			return &os.PathError{Op: "chmod", Path: target, Err: err}
		}
	}
	if x.root {
		for k, v := range hdr.PAXRecords {
			attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
			if !ok || !keptXattr(attr) {
				continue
			}
			if err := unix.Lsetxattr(target, attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
				return &os.PathError{Op: "setxattr " + attr, Path: target, Err: err}
			}
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // set at the end, once its children are in
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: target, Err: err}
	}
	return nil
}

// keptXattr says which extended attributes an archive may set: file capabilities and the
// user namespace. trusted.* (overlayfs's own markers among them) and security labels are not
// the archive's to decide.
func keptXattr(name string) bool {
	return name == "security.capability" || strings.HasPrefix(name, "user.")
}

// removeExisting removes whatever is at path, never following a symlink; nothing there is fine.
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
