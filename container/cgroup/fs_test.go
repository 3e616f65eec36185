package cgroup

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
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

// TestPathsMatchRunc checks the discovery against the managers of
// github.com/opencontainers/cgroups on this host: the same directory for
// every hierarchy, and the same mode. Needs no root: nothing is created.
func TestPathsMatchRunc(t *testing.T) {
	if _, err := os.Stat(unifiedRoot); err != nil {
		t.Skipf("no cgroup filesystem: %v", err)
	}
	c, err := Load("fockker-test-paths", "c1")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := manager.New(&cgroups.Cgroup{Path: "/fockker-test-paths/c1", Resources: &cgroups.Resources{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := mgr.GetPaths(); !maps.Equal(c.Paths(), want) {
		t.Errorf("Paths() = %v\nrunc's manager: %v", c.Paths(), want)
	}
	wantMode := "v1"
	if cgroups.IsCgroup2UnifiedMode() {
		wantMode = "v2"
	} else if cgroups.IsCgroup2HybridMode() {
		wantMode = "hybrid"
	}
	if Mode() != wantMode {
		t.Errorf("Mode() = %s, runc says %s", Mode(), wantMode)
	}
	for sub, p := range c.Paths() {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || !strings.HasSuffix(p, "/fockker-test-paths/c1") {
			t.Errorf("%q: unexpected path %q", sub, p)
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
