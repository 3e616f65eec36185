package image

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"github.com/FishingRodd/fockker/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Options describe an image being created by Import or Commit.
type Options struct {
	Force  bool   // replace an image of the same name (never one a container uses)
	Source string // where it came from, shown by `images`
	Config Config
}

// Import unpacks a root filesystem tar (plain or gzip-compressed, as `export` or `docker
// export` write it) as the image name, a directory in the image root. A hostile or broken
// archive leaves nothing: the tar is unpacked into a temporary directory that is renamed into
// place only when complete.
func (s *Store) Import(r io.Reader, name string, opts Options) (*Meta, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := s.checkNew(name, opts.Force); err != nil { // early; install checks again, locked
		return nil, err
	}
	tmp, err := s.stageDir("import-" + name)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", name, err)
		}
		defer zr.Close()
		src = zr
	}
	if err := Untar(src, tmp); err != nil {
		return nil, fmt.Errorf("import %s: %w", name, err)
	}
	size, err := dirSize(tmp)
	if err != nil {
		return nil, err
	}
	m := Meta{Name: name, Source: opts.Source, Created: time.Now().UTC(), Size: size, Config: opts.Config}
	if err := s.install([]staged{{path: tmp, form: FormDir, meta: m}}, opts.Force); err != nil {
		return nil, err
	}
	return &m, nil
}

// Commit saves the file system under rootfs (a container's merged view) as the image name:
// the archive <image-root>/<name>.tar, as mydocker does, unpacked the first time a container
// uses it. The archive is written to a temporary file and renamed into place when complete.
func (s *Store) Commit(rootfs, name string, opts Options) (*Meta, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := s.checkNew(name, opts.Force); err != nil { // early; install checks again, locked
		return nil, err
	}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.root, tmpPrefix+"commit-"+name+"-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name()) // gone after a successful rename; the temporary otherwise
	defer f.Close()
	if err := WriteTar(f, rootfs); err != nil {
		return nil, fmt.Errorf("commit %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := Meta{Name: name, Source: opts.Source, Created: time.Now().UTC(), Size: fi.Size(), Config: opts.Config}
	if err := s.install([]staged{{path: f.Name(), form: FormArchive, meta: m}}, opts.Force); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteFile creates path with what fill writes, atomically: a temporary file in the same
// directory renamed into place only when fill succeeded, so a failed export leaves nothing.
func WriteFile(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	ok = true
	return atomicfile.SyncDir(dir)
}
