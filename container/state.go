package container

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/atomicfile"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Store keeps container records under the state root, one directory per container name.
//
// Writers hold an exclusive flock on the container's directory for the whole
// read-modify-write; records are replaced atomically (temp file, fsync, rename), so readers
// that only display a record never see half of one and need no lock.
type Store struct {
	root string
}

// networkDir is the state root's directory of network records, never a container's.
const networkDir = "network"

// NewStore returns the store rooted at dir (created on first write).
func NewStore(dir string) *Store { return &Store{root: dir} }

// Lock is an exclusive flock on one container's directory.
type Lock struct {
	f *os.File
}

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Close() // closing the descriptor drops the flock
	l.f = nil
}

// lockDir flocks dir and makes sure the locked inode is still the one at that path: a
// remover may have deleted it while we waited.
func lockDir(dir string, how int) (*Lock, error) {
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
		}
		var held, now unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "fstat", Path: dir, Err: err}
		}
		if err := unix.Stat(dir, &now); err != nil {
			f.Close()
			if errors.Is(err, unix.ENOENT) {
				return nil, &os.PathError{Op: "lock", Path: dir, Err: os.ErrNotExist}
			}
			return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
		}
		if held.Ino == now.Ino && held.Dev == now.Dev {
			return &Lock{f: f}, nil
		}
		f.Close() // replaced under us: try the new one
	}
	return nil, &os.PathError{Op: "lock", Path: dir, Err: os.ErrNotExist}
}

// Reserve creates the record of a new container and returns it locked. The name is taken
// atomically: the directory is built under a temporary name and renamed into place with
// RENAME_NOREPLACE, so two concurrent runs with one name cannot both win.
func (s *Store) Reserve(rec *Record) (*Lock, error) {
	if rec.Name == networkDir {
		return nil, fmt.Errorf("container name %q is reserved for the network state: %w", rec.Name, ErrNameInUse)
	}
	if err := os.MkdirAll(s.root, 0o711); err != nil {
		return nil, fmt.Errorf("create state root: %w", err)
	}
	tmp, err := os.MkdirTemp(s.root, ".new-"+rec.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("reserve %q: %w", rec.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, err
	}
	if err := writeRecord(tmp, rec); err != nil {
		return nil, err
	}
	lk, err := lockDir(tmp, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(s.root, rec.Name)
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		lk.Unlock()
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("container name %q: %w", rec.Name, ErrNameInUse)
		}
		return nil, &os.LinkError{Op: "rename", Old: tmp, New: dst, Err: err}
	}
	ok = true
	return lk, nil
}

// Lock takes the exclusive lock of an existing container.
func (s *Store) Lock(name string) (*Lock, error) {
	lk, err := lockDir(filepath.Join(s.root, name), unix.LOCK_EX)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	return lk, err
}

// tryLock takes the exclusive lock of an existing container if nobody holds it.
func (s *Store) tryLock(name string) (*Lock, error) {
	return lockDir(filepath.Join(s.root, name), unix.LOCK_EX|unix.LOCK_NB)
}

// busy reports whether someone holds the lock of a container (its creator, or a remover).
func (s *Store) busy(name string) bool {
	lk, err := lockDir(filepath.Join(s.root, name), unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	lk.Unlock()
	return false
}

// Load reads one record without locking (records are replaced atomically).
func (s *Store) Load(name string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(s.root, name, configName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("record of %q: %w", name, err)
	}
	return &rec, nil
}

// Save replaces a record; the caller holds its lock.
func (s *Store) Save(rec *Record) error {
	return writeRecord(filepath.Join(s.root, rec.Name), rec)
}

// Update locks a container, applies fn to its record and saves the result.
func (s *Store) Update(name string, fn func(*Record) error) (*Record, error) {
	lk, err := s.Lock(name)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	rec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	if err := fn(rec); err != nil {
		return rec, err
	}
	return rec, s.Save(rec)
}

// Delete removes a container's state directory; the caller holds its lock. A directory that
// is already gone is not an error. The directory is first renamed out of the way, atomically,
// so that a removal killed halfway never leaves a record without its config.json holding the
// name; what is left under the temporary name is the collector's (see Prune).
func (s *Store) Delete(name string) error {
	dir := filepath.Join(s.root, name)
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	trash := filepath.Join(s.root, ".rm-"+name+"-"+hex.EncodeToString(suffix[:]))
	err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, trash, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove state of %q: %w", name, &os.LinkError{Op: "rename", Old: dir, New: trash, Err: err})
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove state of %q: %w", name, err)
	}
	return nil
}

// List returns every record, sorted by creation time. Directories being created (temporary
// names) are skipped; an unreadable record is reported, not hidden.
func (s *Store) List() ([]*Record, error) {
	ents, err := os.ReadDir(s.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*Record
	for _, e := range ents {
		if !e.IsDir() || e.Name() == networkDir || strings.HasPrefix(e.Name(), ".") || ValidateName("container", e.Name()) != nil {
			continue
		}
		rec, err := s.Load(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].CreateTime != recs[j].CreateTime {
			return recs[i].CreateTime < recs[j].CreateTime
		}
		return recs[i].Name < recs[j].Name
	})
	return recs, nil
}

// Resolve turns what the user typed (a name, an ID, or a unique prefix of an ID) into a
// container name.
func (s *Store) Resolve(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty container reference: %w", ErrNotFound)
	}
	if ValidateName("container", ref) == nil {
		if _, err := os.Stat(filepath.Join(s.root, ref, configName)); err == nil {
			return ref, nil
		}
	} else {
		return "", fmt.Errorf("%q: %w", ref, ErrNotFound)
	}
	recs, err := s.List()
	if err != nil {
		return "", err
	}
	var matches []string
	for _, r := range recs {
		if r.ID == ref {
			return r.Name, nil
		}
		if strings.HasPrefix(r.ID, ref) {
			matches = append(matches, r.Name)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("%q: %w", ref, ErrNotFound)
	case 1:
		return matches[0], nil
	default:
		return "", fmt.Errorf("%q matches %s: %w", ref, strings.Join(matches, ", "), ErrAmbiguous)
	}
}

// writeRecord writes dir/config.json atomically: temp file, fsync, rename.
func writeRecord(dir string, rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, configName), append(b, '\n'), 0o600, atomicfile.Synced)
}
