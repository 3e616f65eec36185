package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// memStore is an in-memory Store for allocator tests.
type memStore struct {
	mu      sync.Mutex
	ips     map[netip.Addr]string
	last    netip.Addr
	failOn  netip.Addr // Reserve of this address fails
	reserve int        // number of Reserve calls
}

func newMemStore() *memStore { return &memStore{ips: map[netip.Addr]string{}} }

func (s *memStore) Lock() error   { s.mu.Lock(); return nil }
func (s *memStore) Unlock() error { s.mu.Unlock(); return nil }
func (s *memStore) Reserve(id string, ip netip.Addr) (bool, error) {
	s.reserve++
	if ip == s.failOn {
		return false, errors.New("disk full")
	}
	if _, ok := s.ips[ip]; ok {
		return false, nil
	}
	s.ips[ip] = id
	return true, nil
}
func (s *memStore) Release(ip netip.Addr) error { delete(s.ips, ip); return nil }
func (s *memStore) Allocations() (map[netip.Addr]string, error) {
	out := make(map[netip.Addr]string, len(s.ips))
	for k, v := range s.ips {
		out[k] = v
	}
	return out, nil
}
func (s *memStore) LastReserved() (netip.Addr, error)   { return s.last, nil }
func (s *memStore) SetLastReserved(ip netip.Addr) error { s.last = ip; return nil }

func mustRange(t *testing.T, subnet, gw string) Range {
	t.Helper()
	r := Range{Subnet: netip.MustParsePrefix(subnet), Gateway: netip.MustParseAddr(gw)}
	if err := r.Validate(); err != nil {
		t.Fatalf("range %s gw %s: %v", subnet, gw, err)
	}
	return r
}

func TestRangeValidate(t *testing.T) {
	tests := []struct {
		name, subnet, gw string
		ok               bool
	}{
		{"slash24", "192.168.0.0/24", "192.168.0.1", true},
		{"slash16", "10.1.0.0/16", "10.1.0.1", true},
		{"slash8", "10.0.0.0/8", "10.0.0.1", true},
		{"slash30", "10.0.0.0/30", "10.0.0.1", true},
		{"slash31", "10.0.0.0/31", "10.0.0.1", false},
		{"slash32", "10.0.0.1/32", "10.0.0.1", false},
		{"host bits", "192.168.0.1/24", "192.168.0.1", false},
		{"ipv6", "fd00::/64", "fd00::1", false},
		{"gateway outside", "192.168.0.0/24", "192.168.1.1", false},
		{"gateway is network", "192.168.0.0/24", "192.168.0.0", false},
		{"gateway is broadcast", "192.168.0.0/24", "192.168.0.255", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Range{Subnet: netip.MustParsePrefix(tc.subnet), Gateway: netip.MustParseAddr(tc.gw)}
			err := r.Validate()
			if tc.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidRange) {
				t.Fatalf("got %v, want ErrInvalidRange", err)
			}
		})
	}
	if _, err := NewAllocator(Range{}, newMemStore()); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("NewAllocator(zero range) = %v, want ErrInvalidRange", err)
	}
}

func TestRangeBounds(t *testing.T) {
	r := mustRange(t, "10.1.0.0/16", "10.1.0.1")
	if got := r.Broadcast().String(); got != "10.1.255.255" {
		t.Errorf("broadcast = %s", got)
	}
	if got := r.First().String(); got != "10.1.0.1" {
		t.Errorf("first = %s", got)
	}
	if got := r.Last().String(); got != "10.1.255.254" {
		t.Errorf("last = %s", got)
	}
	if r.Size() != 65533 {
		t.Errorf("size = %d", r.Size())
	}
}

// Every usable address of a /28 is handed out exactly once, never the
// network, gateway or broadcast address, and then the range is exhausted.
func TestAllocateExhaustsSmallRange(t *testing.T) {
	r := mustRange(t, "172.20.0.0/28", "172.20.0.5")
	a, err := NewAllocator(r, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for i := 0; i < 13; i++ {
		ip, err := a.Allocate(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[ip] {
			t.Fatalf("address %s handed out twice", ip)
		}
		if ip == r.Network() || ip == r.Broadcast() || ip == r.Gateway || !r.Subnet.Contains(ip) {
			t.Fatalf("handed out reserved or foreign address %s", ip)
		}
		seen[ip] = true
	}
	if _, err := a.Allocate("one-too-many"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("14th allocation: got %v, want ErrExhausted", err)
	}
}

func TestAllocateTwiceForSameID(t *testing.T) {
	a, _ := NewAllocator(mustRange(t, "192.168.0.0/24", "192.168.0.1"), newMemStore())
	ip, err := a.Allocate("abc")
	if err != nil {
		t.Fatal(err)
	}
	if ip.String() != "192.168.0.2" {
		t.Fatalf("first address = %s, want 192.168.0.2", ip)
	}
	if _, err := a.Allocate("abc"); !errors.Is(err, ErrAllocated) {
		t.Fatalf("second allocation: got %v, want ErrAllocated", err)
	}
	for _, bad := range []string{"", "a b", "a\nb"} {
		if _, err := a.Allocate(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Allocate(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
}

// A released address is not reused until the allocator has gone round.
func TestReleaseRoundRobin(t *testing.T) {
	r := mustRange(t, "10.9.0.0/29", "10.9.0.1") // usable .2 to .6
	a, _ := NewAllocator(r, newMemStore())
	for i := 0; i < 3; i++ {
		if _, err := a.Allocate(fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Release("c0"); err != nil { // frees .2
		t.Fatal(err)
	}
	if err := a.Release("c0"); err != nil {
		t.Fatalf("second release must succeed: %v", err)
	}
	var got []string
	for i := 3; i < 6; i++ {
		ip, err := a.Allocate(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	want := []string{"10.9.0.5", "10.9.0.6", "10.9.0.2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("allocation order %v, want %v", got, want)
	}
	all, err := a.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[netip.MustParseAddr("10.9.0.2")] != "c5" {
		t.Fatalf("allocations = %v", all)
	}
}

// A /16 hands out addresses ending in .255 and .0 (host addresses there)
// and is not limited to 256 entries.
func TestAllocateWideRange(t *testing.T) {
	r := mustRange(t, "10.1.0.0/16", "10.1.0.1")
	a, _ := NewAllocator(r, newMemStore())
	seen := map[netip.Addr]bool{}
	for i := 0; i < 600; i++ {
		ip, err := a.Allocate(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[ip] {
			t.Fatalf("duplicate %s", ip)
		}
		seen[ip] = true
	}
	for _, want := range []string{"10.1.0.255", "10.1.1.0", "10.1.2.88"} {
		if !seen[netip.MustParseAddr(want)] {
			t.Errorf("%s was not handed out", want)
		}
	}

	// Wrap-around at the end of a /8.
	big := mustRange(t, "10.0.0.0/8", "10.0.0.1")
	s := newMemStore()
	s.last = netip.MustParseAddr("10.255.255.253")
	b, _ := NewAllocator(big, s)
	var got []string
	for i := 0; i < 2; i++ {
		ip, err := b.Allocate(fmt.Sprintf("w%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if strings.Join(got, ",") != "10.255.255.254,10.0.0.2" {
		t.Fatalf("wrap-around order %v", got)
	}
}

func TestAllocateStoreError(t *testing.T) {
	s := newMemStore()
	s.failOn = netip.MustParseAddr("192.168.0.2")
	a, _ := NewAllocator(mustRange(t, "192.168.0.0/24", "192.168.0.1"), s)
	if _, err := a.Allocate("x"); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the store's error", err)
	}
	if len(s.ips) != 0 {
		t.Fatalf("failed allocation left %v", s.ips)
	}
}

func TestDiskStoreFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ipam")
	s, err := NewDiskStore(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAllocator(mustRange(t, "192.168.7.0/24", "192.168.7.1"), s)
	// An address reserved behind our back (another process) is skipped.
	if err := os.WriteFile(filepath.Join(dir, "192.168.7.2"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	ip, err := a.Allocate("ctr1")
	if err != nil {
		t.Fatal(err)
	}
	if ip.String() != "192.168.7.3" {
		t.Fatalf("got %s, want 192.168.7.3", ip)
	}
	b, err := os.ReadFile(filepath.Join(dir, "192.168.7.3"))
	if err != nil || string(b) != "ctr1" {
		t.Fatalf("reservation file: %q, %v", b, err)
	}
	last, err := os.ReadFile(filepath.Join(dir, lastReservedFileName))
	if err != nil || strings.TrimSpace(string(last)) != "192.168.7.3" {
		t.Fatalf("last reserved: %q, %v", last, err)
	}
	// A fresh store on the same directory sees the same state.
	s2, _ := NewDiskStore(dir, "")
	a2, _ := NewAllocator(mustRange(t, "192.168.7.0/24", "192.168.7.1"), s2)
	if _, err := a2.Allocate("ctr1"); !errors.Is(err, ErrAllocated) {
		t.Fatalf("got %v, want ErrAllocated", err)
	}
	if err := a2.Release("ctr1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "192.168.7.3")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("released file still there: %v", err)
	}
	if err := a2.Release("ctr1"); err != nil {
		t.Fatalf("idempotent release: %v", err)
	}
	all, err := a.Allocations()
	if err != nil || len(all) != 1 || all[netip.MustParseAddr("192.168.7.2")] != "other" {
		t.Fatalf("allocations = %v, %v", all, err)
	}
}

// A reservation file left empty (its writer killed before it wrote the
// owner, or its content lost with the machine) holds nothing: it is not
// listed, and the address is handed out again, taking the file over. An
// entry that is not a regular file is never taken over.
func TestDiskStoreEmptyFileIsFree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ipam")
	s, err := NewDiskStore(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAllocator(mustRange(t, "192.168.7.0/24", "192.168.7.1"), s)
	if err := os.WriteFile(filepath.Join(dir, "192.168.7.2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "192.168.7.3"), []byte(" \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "192.168.7.4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if all, err := a.Allocations(); err != nil || len(all) != 0 {
		t.Fatalf("allocations = %v, %v; want none", all, err)
	}
	for _, c := range []struct{ id, want string }{{"ctr1", "192.168.7.2"}, {"ctr2", "192.168.7.3"}, {"ctr3", "192.168.7.5"}} {
		ip, err := a.Allocate(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if ip.String() != c.want {
			t.Fatalf("%s got %s, want %s", c.id, ip, c.want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, c.want)); err != nil || string(b) != c.id {
			t.Fatalf("reservation file of %s: %q, %v", c.want, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "192.168.7.4")); err != nil || !fi.IsDir() {
		t.Fatalf("directory in the way changed: %v, %v", fi, err)
	}
	all, err := a.Allocations()
	if err != nil || len(all) != 3 || all[netip.MustParseAddr("192.168.7.2")] != "ctr1" {
		t.Fatalf("allocations = %v, %v", all, err)
	}
}

func checkUnique(t *testing.T, dir string, want int) {
	t.Helper()
	s, _ := NewDiskStore(dir, "")
	a, _ := NewAllocator(mustRange(t, "10.50.0.0/24", "10.50.0.1"), s)
	all, err := a.Allocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != want {
		t.Fatalf("%d reservation files, want %d", len(all), want)
	}
	owners := map[string]bool{}
	for ip, id := range all {
		if owners[id] {
			t.Fatalf("owner %s holds two addresses", id)
		}
		owners[id] = true
		if ip.String() == "10.50.0.0" || ip.String() == "10.50.0.1" || ip.String() == "10.50.0.255" {
			t.Fatalf("reserved address %s handed out", ip)
		}
	}
}

// 100 goroutines allocating at once, half through a shared store and half
// through stores of their own, get 100 different addresses.
func TestConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	r := mustRange(t, "10.50.0.0/24", "10.50.0.1")
	shared, _ := NewDiskStore(dir, "")
	var wg sync.WaitGroup
	ips := make([]netip.Addr, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s Store = shared
			if i%2 == 1 {
				s, _ = NewDiskStore(dir, "")
			}
			a, _ := NewAllocator(r, s)
			ips[i], errs[i] = a.Allocate(fmt.Sprintf("g%d", i))
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if j, dup := seen[ip]; dup {
			t.Fatalf("goroutines %d and %d both got %s", j, i, ip)
		}
		seen[ip] = i
	}
	checkUnique(t, dir, 100)
}

const helperEnv = "FOCKKER_IPAM_HELPER"

// TestHelperProcess is not a test: run by TestConcurrentProcesses, it
// allocates from the directory named in $FOCKKER_IPAM_HELPER with several
// goroutines and prints the addresses.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestConcurrentProcesses")
	}
	dir, prefix, _ := strings.Cut(spec, ",")
	r := Range{Subnet: netip.MustParsePrefix("10.50.0.0/24"), Gateway: netip.MustParseAddr("10.50.0.1")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := NewDiskStore(dir, "")
			if err != nil {
				t.Error(err)
				return
			}
			a, _ := NewAllocator(r, s)
			ip, err := a.Allocate(prefix + "-" + strconv.Itoa(i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Printf("IP %s\n", ip)
		}()
	}
	wg.Wait()
}

// 10 processes of 10 goroutines each, sharing one directory through flock,
// get 100 different addresses.
func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, 10)
	outs := make([]strings.Builder, 10)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,p%d", helperEnv, dir, i))
		cmd.Stdout = &outs[i]
		cmd.Stderr = &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	seen := map[string]bool{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i].String())
		}
		n := 0
		for _, line := range strings.Split(outs[i].String(), "\n") {
			ip, ok := strings.CutPrefix(line, "IP ")
			if !ok {
				continue
			}
			n++
			if seen[ip] {
				t.Fatalf("address %s handed out twice", ip)
			}
			seen[ip] = true
		}
		if n != 10 {
			t.Fatalf("helper %d printed %d addresses:\n%s", i, n, outs[i].String())
		}
	}
	checkUnique(t, dir, 100)
}

// A released reservation file becomes the spare, blank, and the next
// reservation is that file renamed: no file is created, and no file but
// the reservations holds an owner's ID. Only one spare is kept, and its
// directory is made when first needed.
func TestDiskStoreSpare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ipam")
	spare := filepath.Join(t.TempDir(), "spares", "address")
	s, err := NewDiskStore(dir, spare)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAllocator(mustRange(t, "10.5.0.0/24", "10.5.0.1"), s)
	inode := func(path string) uint64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	// files returns the files of the directory and the spare, and their
	// content.
	files := func() map[string]string {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range ents {
			if e.Name() == lockFileName || e.Name() == lastReservedFileName {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
		if b, err := os.ReadFile(spare); err == nil {
			out["spare"] = string(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return out
	}
	// Releasing what is not held makes nothing, not even the spare's
	// directory.
	if err := s.Release(netip.MustParseAddr("10.5.0.9")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(spare)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare's directory made: %v", err)
	}
	if _, err := a.Allocate("first-owner"); err != nil { // 10.5.0.2, created
		t.Fatal(err)
	}
	ino := inode(filepath.Join(dir, "10.5.0.2"))
	if err := a.Release("first-owner"); err != nil {
		t.Fatal(err)
	}
	if got := files(); len(got) != 1 || strings.TrimSpace(got["spare"]) != "" || len(got["spare"]) != len("first-owner") {
		t.Fatalf("after release: %q", got)
	}
	if inode(spare) != ino {
		t.Fatal("the spare is not the released file")
	}
	for _, c := range []struct{ id, ip string }{{"c2", "10.5.0.3"}, {"a-much-longer-owner-id", "10.5.0.4"}, {"c4", "10.5.0.5"}} {
		ip, err := a.Allocate(c.id)
		if err != nil || ip.String() != c.ip {
			t.Fatalf("Allocate(%s) = %s, %v; want %s", c.id, ip, err, c.ip)
		}
		if got := files(); len(got) != 1 || got[c.ip] != c.id {
			t.Fatalf("after allocating %s: %q", c.id, got)
		}
		if inode(filepath.Join(dir, c.ip)) != ino {
			t.Fatalf("%s was created, not renamed from the spare", c.ip)
		}
		if err := a.Release(c.id); err != nil {
			t.Fatal(err)
		}
	}

	// Two released at once: one spare, the other file removed.
	for _, id := range []string{"x1", "x2"} {
		if _, err := a.Allocate(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := files(); len(got) != 2 || got["10.5.0.6"] != "x1" || got["10.5.0.7"] != "x2" {
		t.Fatalf("two reservations: %q", got)
	}
	for _, id := range []string{"x1", "x2"} {
		if err := a.Release(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := files(); len(got) != 1 || strings.TrimSpace(got["spare"]) != "" {
		t.Fatalf("after two releases: %q", got)
	}

	// An address taken behind our back: the spare stays, the next one is
	// reserved with it.
	if err := os.WriteFile(filepath.Join(dir, "10.5.0.8"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Reserve("y", netip.MustParseAddr("10.5.0.8")); ok || err != nil {
		t.Fatalf("Reserve of a taken address = %v, %v", ok, err)
	}
	if _, err := os.Stat(spare); err != nil {
		t.Fatalf("spare gone: %v", err)
	}
	if ip, err := a.Allocate("y"); err != nil || ip.String() != "10.5.0.9" {
		t.Fatalf("Allocate(y) = %s, %v", ip, err)
	}
	all, err := a.Allocations()
	if err != nil || len(all) != 2 || all[netip.MustParseAddr("10.5.0.8")] != "other" || all[netip.MustParseAddr("10.5.0.9")] != "y" {
		t.Fatalf("allocations = %v, %v", all, err)
	}
}

// Stores of two ranges sharing one spare, each used by goroutines through
// stores of their own, allocate and release at once: every reservation
// file holds its owner, and in the end only the spare is left.
func TestConcurrentSpare(t *testing.T) {
	spare := filepath.Join(t.TempDir(), "spares", "address")
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	ranges := []Range{mustRange(t, "10.60.0.0/28", "10.60.0.1"), mustRange(t, "10.61.0.0/28", "10.61.0.1")}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			s, err := NewDiskStore(dirs[g%2], spare)
			if err != nil {
				errs <- err
				return
			}
			a, _ := NewAllocator(ranges[g%2], s)
			for i := range 50 {
				id := fmt.Sprintf("g%d-%d", g, i)
				ip, err := a.Allocate(id)
				if err != nil {
					errs <- err
					return
				}
				if b, err := os.ReadFile(filepath.Join(dirs[g%2], ip.String())); err != nil || string(b) != id {
					errs <- fmt.Errorf("%s of %s holds %q, %v", ip, id, b, err)
					return
				}
				if err := a.Release(id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if _, err := netip.ParseAddr(e.Name()); err == nil {
				t.Errorf("%s left in %s", e.Name(), dir)
			}
		}
	}
	if b, err := os.ReadFile(spare); err != nil || strings.TrimSpace(string(b)) != "" {
		t.Fatalf("spare: %q, %v", b, err)
	}
}
