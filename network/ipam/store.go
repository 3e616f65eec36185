package ipam

import (
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DiskStore is a Store in a directory: one file per reserved address, named
// after the address and holding the owner's ID, created with O_EXCL; a
// "lock" file flocked for the whole of every operation; and a
// "last_reserved_ip" file for round-robin allocation.
//
// A store made with a spare path keeps a released reservation file, blanked,
// as the spare, unless there is one already, and the next reservation
// renames the spare into place (renameat2 RENAME_NOREPLACE, which fails
// like an O_EXCL create if the address is taken) instead of creating a
// file: on some file systems creating a file costs far more than renaming
// one (ext4 without a journal looks for a free inode past every recently
// deleted one, up to a millisecond on a busy machine).
//
// A DiskStore may be shared by goroutines, and any number of DiskStores, in
// any number of processes, may use the same directory.
//
// Nothing is fsynced. Processes see each other's reservations through the
// page cache at once, and only a crash of the whole machine can lose a write
// that was not synced; such a crash also ends every container that held an
// address, so no address held by a live container can be lost. What such a
// crash may leave is a reservation file without its owner (created, its
// content lost), or with the owner it had before it was released (renamed
// from the spare, its new content lost), and so may a process killed between
// creating or renaming the file and writing it: every operation runs under
// the lock, so an empty file is never a reservation in progress, and it
// counts as free (Reserve takes it over); an owner that is gone holds its
// address until it is released, as after any crash.
type DiskStore struct {
	dir   string
	spare string // "" for none

	mu   sync.Mutex // held between Lock and Unlock
	lock *os.File
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore returns a store kept in dir, creating dir if needed. If
// spare is not "", released reservation files are kept there, one at a
// time, for the next reservation to rename into place (see DiskStore): it
// is a path on dir's file system, outside dir or named like no address,
// that nothing but DiskStores uses; its directory is made when first
// needed.
func NewDiskStore(dir, spare string) (*DiskStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ipam: create store: %w", err)
	}
	return &DiskStore{dir: dir, spare: spare}, nil
}

// Dir returns the directory the store lives in.
func (s *DiskStore) Dir() string { return s.dir }

// Lock takes the in-process mutex and then an exclusive flock on a fresh
// open file description, so other DiskStores, here or in other processes,
// are excluded too.
func (s *DiskStore) Lock() error {
	s.mu.Lock()
	f, err := os.OpenFile(filepath.Join(s.dir, lockFileName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		s.mu.Unlock()
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	s.lock = f
	return nil
}

// Unlock releases what Lock took.
func (s *DiskStore) Unlock() error {
	f := s.lock
	s.lock = nil
	defer s.mu.Unlock()
	if f == nil {
		return errors.New("ipam: unlock of unlocked store")
	}
	// Closing the only descriptor of the open file description drops the flock.
	return f.Close()
}

func (s *DiskStore) ipPath(ip netip.Addr) string {
	return filepath.Join(s.dir, ip.String())
}

// Reserve renames the spare, or else creates a file with O_EXCL, to the
// address's file and writes id into it. A file left empty (see DiskStore)
// is taken over.
func (s *DiskStore) Reserve(id string, ip netip.Addr) (bool, error) {
	path := s.ipPath(ip)
	var err error = unix.ENOENT
	if s.spare != "" {
		err = unix.Renameat2(unix.AT_FDCWD, s.spare, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	}
	switch {
	case err == nil:
		if err := smallfile.Overwrite(path, []byte(id)); err != nil {
			return false, errors.Join(err, os.Remove(path))
		}
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return s.takeOver(path, id)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// No spare, or no renameat2 here: create the file.
	default:
		return false, &os.LinkError{Op: "rename", Old: s.spare, New: path, Err: err}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, os.ErrExist) {
		return s.takeOver(path, id)
	}
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, errors.Join(err, os.Remove(path))
	}
	return true, nil
}

// spareMax bounds the size of a file kept as the spare; anything larger
// is no reservation file of ours and is deleted instead.
const spareMax = 4096

// keepAsSpare blanks the reservation file at path and renames it to the
// spare, unless there is one already, and reports whether it did. A file
// it blanked but could not rename is free (see DiskStore) and is left to
// the caller to delete.
func (s *DiskStore) keepAsSpare(path string) bool {
	if s.spare == "" {
		return false
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	ok := unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size <= spareMax
	if ok {
		// Spaces, not an empty file: see SetLastReserved.
		_, err = unix.Pwrite(fd, []byte(strings.Repeat(" ", int(st.Size))), 0)
		ok = err == nil
	}
	if unix.Close(fd) != nil || !ok {
		return false
	}
	return smallfile.Keep(path, s.spare)
}

// takeOver writes id into the existing reservation file at path if it is
// empty, which makes it free (see DiskStore), and reports whether it did.
func (s *DiskStore) takeOver(path, id string) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false, err
	}
	b, err := smallfile.Read(path)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) != "" {
		return false, nil
	}
	if err := os.WriteFile(path, []byte(id), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// Release keeps the address's file as the spare, or removes it; a missing
// file is success.
func (s *DiskStore) Release(ip netip.Addr) error {
	path := s.ipPath(ip)
	if s.keepAsSpare(path) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Allocations reads every reservation file of the directory.
func (s *DiskStore) Allocations() (map[netip.Addr]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]string)
	for _, e := range entries {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue // lock, last_reserved_ip, temp files
		}
		b, err := smallfile.Read(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if owner := strings.TrimSpace(string(b)); owner != "" {
			out[ip] = owner
		} // else free: see DiskStore
	}
	return out, nil
}

// lastReservedWidth is the longest address last_reserved_ip holds,
// 255.255.255.255.
const lastReservedWidth = len("255.255.255.255")

// LastReserved reads last_reserved_ip; a missing file gives the zero Addr.
func (s *DiskStore) LastReserved() (netip.Addr, error) {
	b, err := smallfile.Read(filepath.Join(s.dir, lastReservedFileName))
	if errors.Is(err, os.ErrNotExist) {
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil {
		// A corrupt hint only costs round-robin order; start over.
		return netip.Addr{}, nil
	}
	return ip, nil
}

// SetLastReserved writes last_reserved_ip in place, padded to a fixed width
// so that the file is never truncated: truncating a file to nothing and
// writing it again makes ext4 (auto_da_alloc) start writing it out on
// close, which under disk load costs milliseconds. It is a hint, not state,
// read and written only under the lock: a hint lost or torn by a crash only
// costs round-robin order (LastReserved starts over).
func (s *DiskStore) SetLastReserved(ip netip.Addr) (err error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lastReservedFileName), os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = f.WriteAt([]byte(fmt.Sprintf("%-*s\n", lastReservedWidth, ip)), 0)
	return err
}
