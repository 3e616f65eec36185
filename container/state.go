package container

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/FishingRodd/fockker/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Store keeps container records under the state root, one directory per container name.
//
// Writers hold an exclusive flock on the container's directory for the whole
// read-modify-write; records are replaced atomically (temp file, rename), so readers that
// only display a record never see half of one and need no lock.
//
// Records are not fsynced. A record describes processes, and every process dies with the
// machine; a crash of fockker itself loses nothing (the page cache survives it). What a
// crash of the machine can leave, where the state root survives a reboot at all (the
// default /var/run is a tmpfs), is a record of an earlier version, reconciled with the kernel
// like any other, or, on file systems that may persist a rename before its file's data, an
// empty or cut config.json: Load returns such a record as Damaged, ps shows it so, rm
// removes it with its layers and cgroup, and the collector removes it once no process is
// left in its cgroup (see Prune). What must survive a crash is fsynced where it is written:
// images, and network state (its own package).
//
// A record that says stopped is final (a container never runs again) and is written
// read-only, 0400 instead of 0600: the collector's cheap pass then knows from a stat that it
// has nothing to settle there, without reading it.
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
	if err := mkdirTop(s.root); err != nil {
		return nil, fmt.Errorf("create state root: %w", err)
	}
	tmp, err := s.newDir(".new-" + rec.Name + "-")
	if err != nil {
		return nil, fmt.Errorf("reserve %q: %w", rec.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	// Written in place: nobody reads the directory before it has its name.
	if err := writeRecordIn(tmp, rec, false); err != nil {
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

// Load reads one record without locking (records are replaced atomically). A config.json
// that is not a record of this name (empty, cut short, zeros: what a crash of the machine can
// leave, see Store) is returned as a Damaged record that knows only its name, when the file
// was written (as its creation time) and the default cgroup parent: it is not running as far
// as anyone can tell, and removing it removes its layers and its cgroup by name.
func (s *Store) Load(name string) (*Record, error) {
	return s.LoadKnown(name, nil)
}

// LoadKnown is Load for a caller that holds the record it last saved, known (nil if none):
// when the file holds exactly what known encodes to, known itself is returned, without
// decoding. encoding/json builds its decoders for the record's types by reflection in every
// new process (~0.5 ms of CPU, on the path of every run --rm); anyone else's change to the
// record, or another container under the name, makes the bytes differ and the file is decoded.
func (s *Store) LoadKnown(name string, known *Record) (*Record, error) {
	p := filepath.Join(s.root, name, configName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if known != nil && known.Name == name && known.Status != Damaged && recordBytesEqual(b, known) {
		return known, nil
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil || rec.Name != name {
		return damagedRecord(name, p), nil
	}
	return &rec, nil
}

// recordBytesEqual reports whether b is the file writeRecordIn writes for rec.
func recordBytesEqual(b []byte, rec *Record) bool {
	want := marshalRecord(rec)
	return len(b) == len(want)+1 && b[len(want)] == '\n' && bytes.Equal(b[:len(want)], want)
}

// damagedRecord stands for the unreadable record at path.
func damagedRecord(name, path string) *Record {
	rec := &Record{
		Name: name, Status: Damaged, Command: []string{}, Volume: []string{}, PortMapping: []string{},
		NetworkName: NetNone,
		Spec:        Spec{Name: name, CgroupParent: DefaultCgroupParent, Network: NetNone},
	}
	if fi, err := os.Stat(path); err == nil {
		rec.CreateTime = fi.ModTime().Format(timeLayout)
	}
	return rec
}

// Save replaces a record; the caller holds its lock.
func (s *Store) Save(rec *Record) error {
	return writeRecord(filepath.Join(s.root, rec.Name), rec)
}

// Update locks a container, applies fn to its record and saves the result. A damaged record
// (see Load) is returned as it is: fn is not called and nothing is written.
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
	if rec.Status == Damaged {
		return rec, nil
	}
	if err := fn(rec); err != nil {
		return rec, err
	}
	return rec, s.Save(rec)
}

// Delete removes a container's state directory; the caller holds its lock. A directory that
// is already gone is not an error. The directory is first renamed out of the way, atomically,
// so that a removal killed halfway never leaves a record without its config.json holding the
// name; what is left under the temporary name is the collector's (see Prune). Emptied, it
// becomes the spare directory that the next reservation takes, if there is none yet.
func (s *Store) Delete(name string) error {
	dir := filepath.Join(s.root, name)
	trash, err := s.tempName(".rm-" + name + "-")
	if err != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, trash, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove state of %q: %w", name, &os.LinkError{Op: "rename", Old: dir, New: trash, Err: err})
	}
	if err := s.keepOrRemove(trash); err != nil {
		return fmt.Errorf("remove state of %q: %w", name, err)
	}
	return nil
}

// spareName is the state root's spare record directory: an emptied one that a removal left
// for the next reservation. Reusing it spares a mkdir(2) and an rmdir(2) per container, each
// an inode and a block to allocate or free on a disk-backed state root (~0.2 ms here). It is
// not a record (its name is not a valid container name) and holds nothing.
const spareName = ".spare"

// tempName returns a new temporary name in the state root: prefix and a random suffix.
func (s *Store) tempName(prefix string) (string, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	return filepath.Join(s.root, prefix+hex.EncodeToString(suffix[:])), nil
}

// newDir returns a new, empty directory of mode 0711 under a temporary name: the spare one
// if there is one, else a new one.
func (s *Store) newDir(prefix string) (string, error) {
	dir, err := s.tempName(prefix)
	if err != nil {
		return "", err
	}
	err = unix.Renameat2(unix.AT_FDCWD, filepath.Join(s.root, spareName), unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if err == nil {
		return dir, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return "", &os.LinkError{Op: "rename", Old: filepath.Join(s.root, spareName), New: dir, Err: err}
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o711) // whatever the umask
}

// removeSpare removes the spare record directory, if there is one.
func (s *Store) removeSpare() error {
	if err := os.Remove(filepath.Join(s.root, spareName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// keepOrRemove empties dir, a record directory renamed out of the way, and makes it the spare
// directory, or removes it if there is one already. A collector may remove dir meanwhile (it
// takes what is left under a temporary name): gone is done.
func (s *Store) keepOrRemove(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	err = unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, filepath.Join(s.root, spareName), unix.RENAME_NOREPLACE)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return &os.LinkError{Op: "rename", Old: dir, New: filepath.Join(s.root, spareName), Err: err}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
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

// Modes of config.json: a stopped record is final and read-only (see Store).
const (
	recordMode        os.FileMode = 0o600
	stoppedRecordMode os.FileMode = 0o400
)

// writeRecord writes dir/config.json atomically (temp file, rename; not fsynced, see Store).
func writeRecord(dir string, rec *Record) error {
	return writeRecordIn(dir, rec, true)
}

// writeRecordIn writes dir/config.json, atomically (temp file, rename) or, in a directory
// that nobody else sees yet, straight into a new file.
func writeRecordIn(dir string, rec *Record, atomic bool) error {
	if rec.Status == Damaged {
		return fmt.Errorf("record of %q: a damaged record is never written", rec.Name)
	}
	b := marshalRecord(rec)
	mode := recordMode
	if rec.Status == Stopped {
		mode = stoppedRecordMode
	}
	path := filepath.Join(dir, configName)
	if atomic {
		return atomicfile.Write(path, append(b, '\n'), mode, atomicfile.Replace)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	err = f.Chmod(mode) // whatever the umask: the mode says whether the record is final
	if err == nil {
		_, err = f.Write(append(b, '\n'))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// recordEntry is a record directory as the collector's cheap pass sees it, from a stat.
type recordEntry struct {
	name    string
	missing bool // no config.json: a reservation or removal cut short by a crash
	final   bool // config.json is read-only: the record says stopped
}

// readDir lists a directory in the order the file system gives (os.ReadDir sorts, which
// costs where nobody needs it).
func readDir(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// scan takes the entries of the state root and returns the record directories with what a
// stat of their config.json says, without reading any record.
func (s *Store) scan(ents []os.DirEntry) ([]recordEntry, error) {
	var out []recordEntry
	for _, e := range ents {
		if !e.IsDir() || e.Name() == networkDir || ValidateName("container", e.Name()) != nil {
			continue
		}
		var st unix.Stat_t
		err := unix.Stat(filepath.Join(s.root, e.Name(), configName), &st)
		switch {
		case errors.Is(err, unix.ENOENT):
			out = append(out, recordEntry{name: e.Name(), missing: true})
		case err != nil:
			return nil, &os.PathError{Op: "stat", Path: filepath.Join(s.root, e.Name(), configName), Err: err}
		default:
			out = append(out, recordEntry{name: e.Name(), final: st.Mode&0o222 == 0})
		}
	}
	return out, nil
}
