package cgroup

// Tests on a fake cgroupfs in t.TempDir(): directory layout and control
// files are plain files, so the logic that is ours (checks, teardown order,
// waiting, parent removal) runs without root and on any host.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeCgroup builds a Cgroup whose hierarchies are directories under a temp
// root: root/<sub>/parent/name for each sub (v1 layout).
func fakeCgroup(t *testing.T, subs ...string) (*Cgroup, string) {
	t.Helper()
	root := t.TempDir()
	c := &Cgroup{parent: "fockker", name: "c1", paths: map[string]string{}, destroyWait: 50 * time.Millisecond}
	for _, s := range subs {
		c.paths[s] = filepath.Join(root, s, c.parent, c.name)
	}
	return c, root
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestCheckV1Mounted(t *testing.T) {
	paths := map[string]string{"memory": "/m", "cpu": "/c", "cpuset": "/s"}
	l := Limits{Memory: 64 << 20, CPUQuota: 50000, PidsLimit: 5}
	err := checkV1Mounted(paths, l.settings(false))
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "pids limit") || !strings.Contains(err.Error(), `"pids"`) {
		t.Fatalf("missing pids: %v", err)
	}
	l.PidsLimit = 0
	if err := checkV1Mounted(paths, l.settings(false)); err != nil {
		t.Fatalf("all mounted: %v", err)
	}
	if err := checkV1Mounted(map[string]string{}, nil); err != nil {
		t.Fatalf("no limits: %v", err)
	}
}

func TestCheckV2Available(t *testing.T) {
	// As read from a cgroup.controllers file on a fake cgroupfs.
	dir := t.TempDir()
	f := filepath.Join(dir, "cgroup.controllers")
	all := Limits{Memory: 64 << 20, CPUQuota: 50000, CPUShares: 100, Cpuset: "0", PidsLimit: 5}
	tests := []struct {
		name, controllers string
		l                 Limits
		missing           string // "" means success
	}{
		{"all present", "cpuset cpu io memory hugetlb pids rdma misc\n", all, ""},
		{"no limits, nothing needed", "", Limits{}, ""},
		{"hybrid-like hugetlb only", "hugetlb\n", Limits{Memory: 64 << 20}, "memory"},
		{"no cpuset", "cpu io memory pids\n", all, "cpuset"},
		{"no cpu for shares", "memory pids\n", Limits{CPUShares: 512}, "cpu"},
		{"no pids", "cpu memory cpuset\n", Limits{PidsLimit: 3}, "pids"},
		{"prefix is not a match", "cpuset\n", Limits{CPUQuota: 1000}, "cpu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(f, []byte(tc.controllers), 0o644); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			err = checkV2Available(string(data), f, tc.l.settings(true))
			if tc.missing == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), `"`+tc.missing+`" is not in `+f) {
				t.Fatalf("got %v, want %q unavailable", err, tc.missing)
			}
		})
	}
}

func TestPrecheckV1MissingController(t *testing.T) {
	c, _ := fakeCgroup(t, "memory", "cpu", "cpuset")
	c.limits = Limits{PidsLimit: 10}
	err := c.Create()
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "pids") {
		t.Fatalf("Create with unmounted pids: %v", err)
	}
	if c.Exists() {
		t.Fatal("Create created something before failing its check")
	}
}

func TestPrecheckV1NoDevices(t *testing.T) {
	c, _ := fakeCgroup(t, "memory", "cpu", "pids")
	err := c.Create()
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), `"devices"`) {
		t.Fatalf("Create without a devices hierarchy: %v", err)
	}
	if c.Exists() {
		t.Fatal("Create created something before failing its check")
	}
}

func TestDeviceRules(t *testing.T) {
	var got []string
	for _, r := range (Limits{}).deviceRules() {
		got = append(got, r.String())
	}
	want := "c *:* m|b *:* m|c 1:3 rwm|c 1:5 rwm|c 1:7 rwm|c 1:8 rwm|c 1:9 rwm|c 5:0 rwm|c 5:1 rwm|c 5:2 rwm|c 136:* rwm"
	if strings.Join(got, "|") != want {
		t.Errorf("default rules %q,\nwant %q", strings.Join(got, "|"), want)
	}
	all := (Limits{AllDevices: true}).deviceRules()
	if len(all) != 1 || all[0].String() != "a *:* rwm" || !all[0].allow {
		t.Errorf("all devices: %+v", all)
	}

	// On v1: deny everything, then allow the list; or allow everything.
	var v1 []string
	for _, w := range (Limits{}).deviceWritesV1() {
		v1 = append(v1, w.file+"="+w.value)
	}
	wantV1 := "devices.deny=a *:* rwm|devices.allow=" + strings.ReplaceAll(want, "|", "|devices.allow=")
	if strings.Join(v1, "|") != wantV1 {
		t.Errorf("v1 device writes %q,\nwant %q", strings.Join(v1, "|"), wantV1)
	}
	if w := (Limits{AllDevices: true}).deviceWritesV1(); len(w) != 1 || w[0].file != "devices.allow" || w[0].value != "a *:* rwm" {
		t.Errorf("v1 all devices: %+v", w)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	// Present in one hierarchy only (e.g. another install's leftover or
	// a concurrent owner): refused, and left exactly as it was.
	c, _ := fakeCgroup(t, "memory", "cpu", "pids", "devices")
	mkdirs(t, c.paths["pids"])
	marker := filepath.Join(c.paths["pids"], "owned-by-someone")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Create()
	if !errors.Is(err, ErrExist) || !strings.Contains(err.Error(), c.paths["pids"]) {
		t.Fatalf("Create over existing: %v", err)
	}
	if !exists(marker) || exists(c.paths["memory"]) || exists(c.paths["cpu"]) {
		t.Fatal("refused Create changed the filesystem")
	}
}

func TestDestroyFake(t *testing.T) {
	c, root := fakeCgroup(t, "memory", "cpu", "")
	mkdirs(t, c.paths["memory"], c.paths["cpu"], c.paths[""])
	// A sibling uses the parent in the memory hierarchy.
	sibling := filepath.Join(root, "memory", "fockker", "other")
	mkdirs(t, sibling)

	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.paths {
		if exists(p) {
			t.Errorf("%s left behind", p)
		}
	}
	// The parents stay for the next container (RemoveParent removes them).
	if !exists(filepath.Join(root, "cpu", "fockker")) || !exists(filepath.Join(root, "fockker")) {
		t.Error("an empty parent was removed")
	}
	if !exists(sibling) {
		t.Error("sibling removed")
	}
	// Idempotent: nothing to remove is success.
	if err := c.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if !exists(sibling) {
		t.Error("second Destroy removed the sibling")
	}
}

func TestDestroyWaitsForProcs(t *testing.T) {
	c, _ := fakeCgroup(t, "memory", "pids")
	mkdirs(t, c.paths["memory"], c.paths["pids"])
	procs := filepath.Join(c.paths["memory"], "cgroup.procs")
	if err := os.WriteFile(procs, []byte("4242\n4243\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Destroy()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "[4242 4243]") {
		t.Fatalf("Destroy with tasks: %v", err)
	}
	if !exists(c.paths["memory"]) {
		t.Fatal("busy cgroup removed")
	}
	if exists(c.paths["pids"]) {
		t.Fatal("other hierarchy not cleaned up despite the busy one")
	}

	// The tasks leave while we wait: the wait then ends without error.
	done := make(chan error, 1)
	go func() { done <- waitNoProcs(c.paths["memory"], time.Now().Add(time.Minute)) }()
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(procs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waitNoProcs: %v", err)
	}
}

func TestReadProcs(t *testing.T) {
	dir := t.TempDir()
	if _, err := readProcs(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	f := filepath.Join(dir, "cgroup.procs")
	for content, want := range map[string]int{"": 0, "1\n": 1, "1\n22\n333\n": 3} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		pids, err := readProcs(dir)
		if err != nil || len(pids) != want {
			t.Fatalf("readProcs(%q) = %v, %v", content, pids, err)
		}
	}
	if err := os.WriteFile(f, []byte("12\nx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readProcs(dir); err == nil {
		t.Fatal("junk pid accepted")
	}
}

func TestRemoveIfEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fockker")
	if err := removeIfEmpty(dir); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
	mkdirs(t, filepath.Join(dir, "child"))
	if err := removeIfEmpty(dir); err != nil {
		t.Fatalf("non-empty dir: %v", err)
	}
	if !exists(dir) {
		t.Fatal("non-empty dir removed")
	}
	if err := os.Remove(filepath.Join(dir, "child")); err != nil {
		t.Fatal(err)
	}
	if err := removeIfEmpty(dir); err != nil || exists(dir) {
		t.Fatalf("empty dir: %v, exists=%v", err, exists(dir))
	}
	// A file is not a parent cgroup: reported, not ignored.
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removeIfEmpty(file); err == nil {
		t.Fatal("rmdir of a file succeeded")
	}
}

func TestPopulateCpuset(t *testing.T) {
	// A fake v1 cpuset hierarchy: root/parent/child with control files.
	tests := []struct {
		name                  string
		noprefix              bool
		parentCpus, parentMem string
		wantParentCpus        string
	}{
		{"parent populated", false, "1\n", "0\n", "1"},
		{"parent empty: copied from the root", false, "\n", "\n", "0-3"},
		{"noprefix", true, "", "", "0-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			parent := filepath.Join(root, "fockker")
			child := filepath.Join(parent, "c1")
			mkdirs(t, child)
			prefix := "cpuset."
			if tc.noprefix {
				prefix = ""
			}
			files := map[string]string{
				filepath.Join(root, prefix+"cpus"): "0-3\n", filepath.Join(root, prefix+"mems"): "0\n",
				filepath.Join(parent, prefix+"cpus"): tc.parentCpus, filepath.Join(parent, prefix+"mems"): tc.parentMem,
				filepath.Join(child, prefix+"cpus"): "", filepath.Join(child, prefix+"mems"): "",
			}
			for f, v := range files {
				if err := os.WriteFile(f, []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := populateCpuset(child); err != nil {
				t.Fatal(err)
			}
			cpusF, memsF := prefix+"cpus", prefix+"mems"
			pc, pm, err := readCpuset(parent, cpusF, memsF)
			if err != nil || pc != tc.wantParentCpus || pm != "0" {
				t.Fatalf("parent cpus/mems = %q/%q, %v; want %q/0", pc, pm, err, tc.wantParentCpus)
			}
			cc, cm, err := readCpuset(child, cpusF, memsF)
			if err != nil || cc != tc.wantParentCpus || cm != "0" {
				t.Fatalf("child cpus/mems = %q/%q, %v; want the parent's %q/0", cc, cm, err, tc.wantParentCpus)
			}
		})
	}
	if err := populateCpuset(filepath.Join(t.TempDir(), "p", "c")); err == nil {
		t.Fatal("missing files not reported")
	}
}

func TestClaimPathAvoidsCpuset(t *testing.T) {
	c, _ := fakeCgroup(t, "cpuset", "memory", "cpu")
	if got := c.claimPath(); got != c.paths["cpu"] {
		t.Fatalf("claimPath = %s, want the cpu dir", got)
	}
	only, _ := fakeCgroup(t, "cpuset")
	if got := only.claimPath(); got != only.paths["cpuset"] {
		t.Fatalf("claimPath with cpuset only = %s", got)
	}
}
