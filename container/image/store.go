package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/FishingRodd/fockker/internal/atomicfile"
	"github.com/FishingRodd/fockker/internal/ident"
	"golang.org/x/sys/unix"
)

// metaDir holds one <name>.json per image and the store's lock. Image names never start with
// a dot, so neither it nor the store's temporary ".tmp-*" entries can be taken for an image.
const (
	metaDir   = ".meta"
	lockName  = "lock"
	tmpPrefix = ".tmp-"
)

// reserved reports whether name is one of the image root's own directories (the seed's
// per-container layers).
func reserved(name string) bool {
	return name == "mnt" || name == "writeLayer" || name == "workLayer"
}

// ValidateName checks the name of an image to be created: the container package's rule for
// names, and none of the image root's own directories nor a name ending in ".tar" (that is
// the archive form of another image).
func ValidateName(name string) error {
	if !ident.Valid(name) {
		return fmt.Errorf("image name %q: must match %s: %w", name, ident.Rule, ErrInvalidName)
	}
	if reserved(name) || strings.HasSuffix(name, ".tar") {
		return fmt.Errorf("image name %q: reserved in the image root: %w", name, ErrInvalidName)
	}
	return nil
}

// Config is what an image says about running it, from its OCI / docker config.
type Config struct {
	Env        []string `json:"env,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Meta is an image's record, <image-root>/.meta/<name>.json. Images made by hand (a
// directory or a tar dropped into the image root) have none; List fills in what it can.
type Meta struct {
	Name    string    `json:"name"`
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	Config  Config    `json:"config"`
	// Ref and ID are a loaded image's reference (repository:tag) and config digest.
	Ref string `json:"ref,omitempty"`
	ID  string `json:"id,omitempty"`
}

// Image is one image of the store as List shows it.
type Image struct {
	Meta
	// Form is "directory" (<name>/, ready) or "archive" (<name>.tar, unpacked on first use).
	Form string `json:"form"`
}

// Forms an image takes in the image root.
const (
	FormDir     = "directory"
	FormArchive = "archive"
)

// Store is the image root of one installation.
type Store struct {
	root string
	// inUse names the containers that use an image; an image they use is never removed or
	// replaced. Nil means nothing uses images.
	inUse func(image string) ([]string, error)
}

// NewStore returns the store of the image root, refusing to remove or replace an image for
// which inUse names containers.
func NewStore(root string, inUse func(image string) ([]string, error)) *Store {
	return &Store{root: root, inUse: inUse}
}

func (s *Store) dirPath(name string) string  { return filepath.Join(s.root, name) }
func (s *Store) tarPath(name string) string  { return filepath.Join(s.root, name+".tar") }
func (s *Store) metaPath(name string) string { return filepath.Join(s.root, metaDir, name+".json") }

// form reports how the image exists: FormDir, FormArchive or "" (not at all).
func (s *Store) form(name string) string {
	if fi, err := os.Stat(s.dirPath(name)); err == nil && fi.IsDir() {
		return FormDir
	}
	if fi, err := os.Stat(s.tarPath(name)); err == nil && fi.Mode().IsRegular() {
		return FormArchive
	}
	return ""
}

// Config returns the image's config; an image without a record (made by hand) has an empty
// one. It neither checks that the image exists nor changes anything.
func (s *Store) Config(name string) (Config, error) {
	if !ident.Valid(name) {
		return Config{}, fmt.Errorf("image name %q: %w", name, ErrInvalidName)
	}
	m, err := s.readMeta(name)
	if err != nil || m == nil {
		return Config{}, err
	}
	return m.Config, nil
}

func (s *Store) readMeta(name string) (*Meta, error) {
	b, err := os.ReadFile(s.metaPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image %q: %s: %w", name, s.metaPath(name), err)
	}
	return &m, nil
}

// Get returns one image.
func (s *Store) Get(name string) (*Image, error) {
	if !ident.Valid(name) || reserved(name) {
		return nil, fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	form := s.form(name)
	if form == "" {
		return nil, fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	m, err := s.readMeta(name)
	if err != nil {
		return nil, err
	}
	img := &Image{Form: form}
	if m != nil {
		img.Meta = *m
		return img, nil
	}
	// Made by hand: what the file system says.
	img.Name = name
	path := s.dirPath(name)
	img.Source = "directory " + path
	if form == FormArchive {
		path = s.tarPath(name)
		img.Source = "archive " + path
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	img.Created = fi.ModTime()
	img.Size = fi.Size()
	if form == FormDir {
		if img.Size, err = dirSize(path); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// List returns every image of the store, by name.
func (s *Store) List() ([]*Image, error) {
	ents, err := os.ReadDir(s.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*Image
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".tar")
		if seen[name] || !ident.Valid(name) || reserved(name) {
			continue
		}
		img, err := s.Get(name)
		if errors.Is(err, ErrNotFound) {
			continue // a plain file, or x.tar that is a directory
		}
		if err != nil {
			return nil, err
		}
		seen[name] = true
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes an image (directory, archive and record). An image a container uses, running
// or stopped, is refused with ErrInUse.
func (s *Store) Remove(name string) error {
	if !ident.Valid(name) || reserved(name) {
		return fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if s.form(name) == "" {
		// A record without an image is a leftover: clear it, but the image was not there.
		if err := removeFile(s.metaPath(name)); err != nil {
			return err
		}
		return fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	if err := s.checkUnused(name); err != nil {
		return err
	}
	trash, err := s.moveAside(name)
	if err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// checkUnused refuses an image that a container uses.
func (s *Store) checkUnused(name string) error {
	if s.inUse == nil {
		return nil
	}
	users, err := s.inUse(name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("image %q: used by container(s) %s (remove them first): %w", name, strings.Join(users, ", "), ErrInUse)
	}
	return nil
}

// moveAside moves an image's directory, archive and record into a new hidden directory, so
// that the image is gone at once and removing its files can take its time. It returns that
// directory; on failure nothing has moved.
func (s *Store) moveAside(name string) (trash string, err error) {
	trash, err = os.MkdirTemp(s.root, tmpPrefix+"rm-"+name+"-")
	if err != nil {
		return "", err
	}
	type move struct{ from, to string }
	var done []move
	defer func() {
		if err != nil {
			for i := len(done) - 1; i >= 0; i-- {
				_ = os.Rename(done[i].to, done[i].from)
			}
			os.RemoveAll(trash)
		}
	}()
	for _, m := range []move{
		{s.dirPath(name), filepath.Join(trash, "dir")},
		{s.tarPath(name), filepath.Join(trash, "archive.tar")},
		{s.metaPath(name), filepath.Join(trash, "meta.json")},
	} {
		if err := os.Rename(m.from, m.to); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return "", err
		}
		done = append(done, m)
	}
	return trash, nil
}

// lock takes the store's lock, held by everything that adds, replaces or removes images.
func (s *Store) lock() (func(), error) {
	dir := filepath.Join(s.root, metaDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() { f.Close() }, nil
}

// checkNew refuses a name that is taken, unless force is set and no container uses it.
func (s *Store) checkNew(name string, force bool) error {
	if s.form(name) == "" {
		return nil
	}
	if !force {
		return fmt.Errorf("image %q: %w (use -f to replace it)", name, ErrExists)
	}
	return s.checkUnused(name)
}

// staged is a new image ready to be put in place: a directory or an archive under the image
// root, and its record.
type staged struct {
	path string // a temporary directory or file in the image root
	form string
	meta Meta
}

// install puts staged images in place under the store's lock, replacing images of the same
// name only when force is set. It is all or nothing: on failure every image is as before and
// the staged files are still the caller's to remove.
func (s *Store) install(images []staged, force bool) (err error) {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for _, st := range images {
		if err := s.checkNew(st.meta.Name, force); err != nil {
			return err
		}
	}
	type undo struct {
		name, trash string // the image as it was, moved aside ("" when it did not exist)
		placed      bool
	}
	var done []undo
	defer func() {
		for i := len(done) - 1; i >= 0; i-- {
			u := done[i]
			if err != nil {
				if u.placed {
					_, _ = s.moveAside(u.name) // our new image: out of the way, removed below
				}
				if u.trash != "" {
					_ = s.restore(u.name, u.trash)
				}
			}
			if u.trash != "" {
				os.RemoveAll(u.trash)
			}
		}
		removeTrash(s.root)
	}()
	for _, st := range images {
		u := undo{name: st.meta.Name}
		if s.form(st.meta.Name) != "" {
			if u.trash, err = s.moveAside(st.meta.Name); err != nil {
				return err
			}
		}
		done = append(done, u)
		b, err := json.MarshalIndent(&st.meta, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.Write(s.metaPath(st.meta.Name), append(b, '\n'), 0o644, atomicfile.Durable); err != nil {
			return err
		}
		dst := s.dirPath(st.meta.Name)
		if st.form == FormArchive {
			dst = s.tarPath(st.meta.Name)
		}
		done[len(done)-1].placed = true
		if err := os.Rename(st.path, dst); err != nil {
			return err
		}
		if err := atomicfile.SyncDir(s.root); err != nil {
			return err
		}
	}
	return nil
}

// restore moves an image that moveAside put in trash back in place.
func (s *Store) restore(name, trash string) error {
	var errs []error
	for _, m := range []struct{ from, to string }{
		{filepath.Join(trash, "dir"), s.dirPath(name)},
		{filepath.Join(trash, "archive.tar"), s.tarPath(name)},
		{filepath.Join(trash, "meta.json"), s.metaPath(name)},
	} {
		if err := os.Rename(m.from, m.to); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTrash removes what earlier removals left behind (a crash half-way through); only
// called under the store's lock, when no other removal runs.
func removeTrash(root string) {
	matches, _ := filepath.Glob(filepath.Join(root, tmpPrefix+"rm-*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

// stageDir makes a temporary directory in the image root for a new image's file system.
func (s *Store) stageDir(what string) (string, error) {
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(s.root, tmpPrefix+what+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// dirSize is the apparent size of a tree: regular files (each inode once) and symlinks. dir
// itself may be a symlink (an image linked into the image root).
func dirSize(dir string) (int64, error) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return 0, err
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
