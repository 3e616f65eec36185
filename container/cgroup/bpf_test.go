package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const probeDirEnv = "FOCKKER_CGROUP_TEST_PROBE_DIR"

// devicesHelper runs in the cgroup under test (cloned into it) and reports
// what the kernel lets it do: open /dev/null and /dev/kmsg (c 1:11), create
// a character (c 1:11) and a block (b 7:0) device node in $probeDir and open
// them. Each result is "ok" or the errno's name.
func devicesHelper() {
	dir := os.Getenv(probeDirEnv)
	res := func(err error) string {
		var errno unix.Errno
		if err == nil {
			return "ok"
		} else if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	open := func(path string, flags int) string {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return res(err)
	}
	out := []string{
		"null=" + open("/dev/null", unix.O_RDWR),
		"kmsg=" + open("/dev/kmsg", unix.O_RDONLY),
	}
	for _, n := range []struct {
		name string
		mode uint32
		dev  int
	}{{"chr", unix.S_IFCHR, int(unix.Mkdev(1, 11))}, {"blk", unix.S_IFBLK, int(unix.Mkdev(7, 0))}} {
		p := filepath.Join(dir, n.name)
		out = append(out, "mknod-"+n.name+"="+res(unix.Mknod(p, n.mode|0o600, n.dev)))
		out = append(out, "open-"+n.name+"="+open(p, unix.O_RDONLY))
	}
	fmt.Println(strings.Join(out, " "))
	os.Exit(0)
}

// testV2Dir makes a cgroup v2 directory for this test: under /sys/fs/cgroup
// on a v2 host, under the hybrid unified hierarchy (which needs no
// controllers for a device filter) on a hybrid one. It is removed at the
// end; the kernel detaches its programs with it.
func testV2Dir(t *testing.T) string {
	t.Helper()
	var root string
	switch Mode() {
	case "v2":
		root = unifiedRoot
	case "hybrid":
		root = hybridMountpoint
	default:
		t.Skip("no cgroup v2 hierarchy on this host")
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "fockker-test-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removePath(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// probeV2Devices runs devicesHelper cloned into the cgroup dir.
func probeV2Devices(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probeDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=devices", probeDirEnv+"="+probeDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestRealDeviceFilter loads and attaches the device filters to real cgroup
// v2 directories and asks a process inside what it may open.
func TestRealDeviceFilter(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("needs /dev/kmsg: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(os.TempDir(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_NODEV != 0 {
		t.Skipf("%s is mounted nodev: device nodes made there cannot be opened", os.TempDir())
	}
	root := testV2Dir(t)
	if got := probeV2Devices(t, root); got != "null=ok kmsg=ok mknod-chr=ok open-chr=ok mknod-blk=ok open-blk=ENXIO" &&
		got != "null=ok kmsg=ok mknod-chr=ok open-chr=ok mknod-blk=ok open-blk=ok" {
		t.Fatalf("without a filter: %s", got)
	}
	for _, tc := range []struct {
		name string
		l    Limits
		want string
	}{
		// Nodes of any device may be made, only the listed ones opened.
		{"default", Limits{}, "null=ok kmsg=EPERM mknod-chr=ok open-chr=EPERM mknod-blk=ok open-blk=EPERM"},
		// Everything allowed: no loop0 is no ENXIO, not EPERM.
		{"all", Limits{AllDevices: true}, "null=ok kmsg=ok mknod-chr=ok open-chr=ok mknod-blk=ok open-blk=(ok|ENXIO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, tc.name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			prog, err := deviceFilter(tc.l.deviceRules())
			if err != nil {
				t.Fatal(err)
			}
			fds := openFDs(t)
			if err := attachDeviceFilter(dir, prog); err != nil {
				t.Fatal(err)
			}
			if n := openFDs(t); n != fds {
				t.Errorf("%d fds open after attaching, %d before", n, fds)
			}
			got := probeV2Devices(t, dir)
			t.Logf("%s", got)
			want := strings.Replace(tc.want, "(ok|ENXIO)", "ok", 1)
			alt := strings.Replace(tc.want, "(ok|ENXIO)", "ENXIO", 1)
			if got != want && got != alt {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// The filter of a parent applies below it: a child cgroup with the
	// allow-everything filter is still held by its parent's.
	dir := filepath.Join(root, "default", "child")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prog, err := deviceFilter(Limits{AllDevices: true}.deviceRules())
	if err != nil {
		t.Fatal(err)
	}
	if err := attachDeviceFilter(dir, prog); err != nil {
		t.Fatal(err)
	}
	if got, want := probeV2Devices(t, dir), "null=ok kmsg=EPERM mknod-chr=ok open-chr=EPERM mknod-blk=ok open-blk=EPERM"; got != want {
		t.Errorf("child of the default cgroup: got %s, want %s", got, want)
	}
}

// TestRealDeviceFilterErrors: what the kernel refuses comes back as an
// error that says why, and leaves no fd behind.
func TestRealDeviceFilterErrors(t *testing.T) {
	needRoot(t)
	dir := testV2Dir(t)
	fds := openFDs(t)
	// r0 never set: the verifier refuses, and its log ends the error.
	err := attachDeviceFilter(dir, []insn{{op: opExit}})
	if err == nil || !strings.Contains(err.Error(), "BPF_PROG_LOAD") || !strings.Contains(err.Error(), "verifier log: ") ||
		!strings.Contains(err.Error(), "R0") || !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("program without r0: %v", err)
	}
	t.Logf("program without r0: %v", err)
	prog, err := deviceFilter(Limits{}.deviceRules())
	if err != nil {
		t.Fatal(err)
	}
	// Not a cgroup.
	err = attachDeviceFilter(t.TempDir(), prog)
	if err == nil || !strings.Contains(err.Error(), "BPF_PROG_ATTACH") {
		t.Errorf("attaching to a plain directory: %v", err)
	}
	t.Logf("attaching to a plain directory: %v", err)
	if err := attachDeviceFilter(filepath.Join(dir, "missing"), prog); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("attaching to a missing directory: %v", err)
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d fds open after the failures, %d before", n, fds)
	}
}

// TestRaiseMemlock: the soft limit is raised to the hard limit (never above) for the load
// only, then restored; at the hard limit already, nothing is done.
func TestRaiseMemlock(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_MEMLOCK, &orig) // back down or up to at most the hard limit
	if orig.Max == 0 {
		t.Skip("RLIMIT_MEMLOCK's hard limit is 0")
	}
	// Lowering the soft limit is always allowed: start below the hard one.
	low := unix.Rlimit{Cur: orig.Max / 2, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &low); err != nil {
		t.Fatal(err)
	}
	restore := raiseMemlock()
	if restore == nil {
		t.Fatal("not raised")
	}
	var raised, after unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &raised); err != nil {
		t.Fatal(err)
	}
	restore()
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &after); err != nil {
		t.Fatal(err)
	}
	if raised != (unix.Rlimit{Cur: orig.Max, Max: orig.Max}) || after != low {
		t.Errorf("from %+v raised to %+v, restored to %+v", low, raised, after)
	}
	at := unix.Rlimit{Cur: orig.Max, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &at); err != nil {
		t.Fatal(err)
	}
	if raiseMemlock() != nil {
		t.Error("raised at the hard limit")
	}
}
