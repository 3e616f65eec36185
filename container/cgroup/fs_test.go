package cgroup

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A hybrid host with co-mounted cpu,cpuacct (Debian's layout), a second
// mount of the memory hierarchy, a cgroup2 mount and unrelated mounts.
const sampleMountinfo = `22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/a
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
37 31 0:34 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,noprefix,release_agent=/x
38 22 0:32 / /mnt/memory\040copy rw - cgroup cgroup rw,memory
39 31 0:35 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
40 31 0:36 / /sys/fs/cgroup/named rw - cgroup cgroup rw,name=other
`

func TestV1Mounts(t *testing.T) {
	got, err := v1Mounts(sampleMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"name=systemd": "/sys/fs/cgroup/systemd",
		"cpu":          "/sys/fs/cgroup/cpu,cpuacct",
		"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct",
		"memory":       "/sys/fs/cgroup/memory",
		"net_cls":      "/sys/fs/cgroup/net_cls,net_prio",
		"net_prio":     "/sys/fs/cgroup/net_cls,net_prio",
		"cpuset":       "/sys/fs/cgroup/cpuset",
		"devices":      "/sys/fs/cgroup/devices",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("v1Mounts:\n%v\nwant\n%v", got, want)
	}
	if _, err := v1Mounts("1 2 3\n"); err == nil {
		t.Fatal("malformed line accepted")
	}
	if m, err := v1Mounts(""); err != nil || len(m) != 0 {
		t.Fatalf("empty mountinfo: %v, %v", m, err)
	}
}

// TestPathsMatchKernel checks the discovery against the kernel's own list
// of the hierarchies this process is in (/proc/self/cgroup): a directory
// for every v1 hierarchy of a subsystem we use and for the unified one
// (hybrid and v2 hosts), the subsystems of one hierarchy sharing it, each
// on a cgroup filesystem of the right version. Needs no root: nothing is
// created.
func TestPathsMatchKernel(t *testing.T) {
	if _, err := os.Stat(unifiedRoot); err != nil {
		t.Skipf("no cgroup filesystem: %v", err)
	}
	c, err := Load("fockker-test-paths", "c1")
	if err != nil {
		t.Fatal(err)
	}
	paths := c.Paths()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // subsystem -> hierarchy ID
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		// ID:SUBSYSTEMS:PATH; ID 0 with no subsystems is the unified hierarchy.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			t.Fatalf("/proc/self/cgroup: bad line %q", line)
		}
		if parts[0] == "0" {
			if Mode() != "v1" {
				want[""] = "0"
			}
			continue
		}
		for sub := range strings.SplitSeq(parts[1], ",") {
			if isV1Subsystem(sub) {
				want[sub] = parts[0]
			}
		}
	}
	hasV1 := len(want) > 1 || (len(want) == 1 && want[""] == "")
	if (Mode() == "v2") == hasV1 {
		t.Errorf("Mode() = %s, /proc/self/cgroup:\n%s", Mode(), data)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(paths)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("Paths() = %v\nthe kernel's hierarchies (subsystem: ID): %v", paths, want)
	}
	t.Logf("hierarchies (subsystem: ID): %v", want)
	for sub, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || !strings.HasSuffix(p, "/fockker-test-paths/c1") {
			t.Errorf("%q: unexpected path %q", sub, p)
		}
		for other, q := range paths {
			if (want[sub] == want[other]) != (p == q) {
				t.Errorf("%q in hierarchy %s at %s, %q in hierarchy %s at %s", sub, want[sub], p, other, want[other], q)
			}
		}
		mnt := filepath.Dir(filepath.Dir(p))
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		magic := int64(unix.CGROUP_SUPER_MAGIC)
		if sub == "" {
			magic = unix.CGROUP2_SUPER_MAGIC
		}
		if int64(st.Type) != magic {
			t.Errorf("%q: %s is a filesystem of type %#x, want %#x", sub, mnt, st.Type, magic)
		}
	}
}

func TestReadWriteFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if _, err := readFile(f); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	if err := writeFile(f, "x"); !os.IsNotExist(err) {
		t.Fatalf("writeFile creates files: %v", err)
	}
	big := strings.Repeat("0123456789", 1000) // more than one read buffer
	if err := os.WriteFile(f, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readFile(f); err != nil || got != big {
		t.Fatalf("readFile: %d bytes, %v", len(got), err)
	}
	if err := writeFile(f, "abc"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(f); !strings.HasPrefix(got, "abc") {
		t.Fatalf("after writeFile: %q...", got[:10])
	}
	if err := writeFile(dir, "x"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("writing a directory: %v", err)
	}
}
