package cgroup

// Privileged tests on the real kernel (this host is hybrid, driven as v1;
// the file checks also cover v2). Every test uses its own parent
// "fockker-test-<random>" and removes everything in t.Cleanup.

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const helperEnv = "FOCKKER_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "alloc":
		allocHelper()
		return
	case "devices":
		devicesHelper()
		return
	}
	os.Exit(m.Run())
}

// allocHelper waits for a line on stdin (sent once it has been moved into
// the cgroup), then touches 512MiB and reports if it survived.
func allocHelper() {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(2)
	}
	var keep [][]byte
	for range 512 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("survived", len(keep))
	os.Exit(0)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
}

// testParent returns a parent unique to this test and registers a cleanup
// that removes anything left under it and fails if it cannot.
func testParent(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	parent := "fockker-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		// Destroy leaves the parent for the next container: RemoveParent is what removes it.
		if err := RemoveParent(parent); err != nil {
			t.Errorf("RemoveParent: %v", err)
		}
		for _, dir := range parentDirs(t, parent) {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s left behind", dir)
				// Best effort, children first.
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if e.IsDir() {
						_ = removePath(filepath.Join(dir, e.Name()))
					}
				}
				_ = os.Remove(dir)
			}
		}
	})
	return parent
}

// parentDirs lists where parent would live in every mounted hierarchy.
func parentDirs(t *testing.T, parent string) []string {
	t.Helper()
	c, err := Load(parent, "x")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range c.Paths() {
		out = append(out, filepath.Dir(p))
	}
	return out
}

func assertGone(t *testing.T, c *Cgroup, parentToo bool) {
	t.Helper()
	for sub, p := range c.Paths() {
		if exists(p) {
			t.Errorf("%q: %s still exists", sub, p)
		}
	}
	if !parentToo {
		return
	}
	// Destroy leaves the (now empty) parent for the next container; RemoveParent removes it.
	if err := RemoveParent(c.parent); err != nil {
		t.Errorf("RemoveParent: %v", err)
	}
	for sub, p := range c.Paths() {
		if exists(filepath.Dir(p)) {
			t.Errorf("%q: parent %s still exists", sub, filepath.Dir(p))
		}
	}
}

// procCgroups returns the kernel's view of the cgroups of process pid
// (/proc/PID/cgroup): subsystem -> path, with "" for the unified hierarchy
// and each of a hierarchy's subsystems ("cpu", "cpuacct", "name=systemd").
func procCgroups(pid int) (map[string]string, error) {
	f := fmt.Sprintf("/proc/%d/cgroup", pid)
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s: bad line %q", f, line)
		}
		for sub := range strings.SplitSeq(parts[1], ",") {
			out[sub] = parts[2]
		}
	}
	return out, nil
}

func readTrim(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestRealCreateLimitsAddDestroy(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	l := Limits{Memory: 64 << 20, CPUQuota: 50000, CPUPeriod: 100000, CPUShares: 512, Cpuset: "0", PidsLimit: 50}
	c, err := New(parent, "all", l)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	paths := c.Paths()
	if Mode() != "v2" {
		// The devices cgroup holds runc's default allow list.
		got := strings.Split(readTrim(t, paths["devices"], "devices.list"), "\n")
		sort.Strings(got)
		want := []string{"b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
			"c 136:* rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm"}
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("devices.list:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	if Mode() == "v2" {
		dir := paths[""]
		for file, want := range map[string]string{
			"memory.max":  strconv.Itoa(64 << 20),
			"cpu.max":     "50000 100000",
			"cpu.weight":  strconv.FormatUint(cpuWeight(512), 10),
			"cpuset.cpus": "0",
			"pids.max":    "50",
		} {
			if got := readTrim(t, dir, file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
		if exists(filepath.Join(dir, "memory.swap.max")) {
			if got := readTrim(t, dir, "memory.swap.max"); got != "0" {
				t.Errorf("memory.swap.max = %q, want 0", got)
			}
		}
	} else {
		checks := []struct{ sub, file, want string }{
			{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
			{"cpu", "cpu.cfs_quota_us", "50000"},
			{"cpu", "cpu.cfs_period_us", "100000"},
			{"cpu", "cpu.shares", "512"},
			{"cpuset", "cpuset.cpus", "0"},
			{"pids", "pids.max", "50"},
		}
		if exists(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")) {
			checks = append(checks, struct{ sub, file, want string }{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(64 << 20)})
		}
		for _, ck := range checks {
			if got := readTrim(t, paths[ck.sub], ck.file); got != ck.want {
				t.Errorf("%s/%s = %q, want %q", paths[ck.sub], ck.file, got, ck.want)
			}
		}
		if got := readTrim(t, paths["cpuset"], "cpuset.mems"); got == "" {
			t.Error("cpuset.mems not copied from the parent")
		}
		if got := readTrim(t, filepath.Dir(paths["cpuset"]), "cpuset.cpus"); got == "" {
			t.Error("parent cpuset.cpus not populated")
		}
	}

	cmd := startSleep(t)
	pid := cmd.Process.Pid
	if err := c.Add(pid); err != nil {
		t.Fatal(err)
	}
	// The kernel's view: the process is in parent/name in every hierarchy.
	in, err := procCgroups(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := "/" + parent + "/all"
	for sub := range paths {
		if in[sub] != want {
			t.Errorf("/proc/%d/cgroup %q: %q, want %q", pid, sub, in[sub], want)
		}
	}
	for _, p := range paths {
		pids, err := readProcs(p)
		if err != nil || len(pids) != 1 || pids[0] != pid {
			t.Errorf("%s/cgroup.procs = %v, %v; want [%d]", p, pids, err, pid)
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
	if err := c.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
}

// probeDevices starts a shell, moves it into c, and reports which of
// /dev/null and /dev/kmsg (c 1:11, not in the default set) it may open.
func probeDevices(t *testing.T, c *Cgroup) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `read x
for d in /dev/null /dev/kmsg; do
	if (exec 3<$d) 2>/dev/null; then echo "$d open"; else echo "$d denied"; fi
done`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	return strings.TrimSpace(out.String())
}

// TestRealDevices asks the kernel: in a default cgroup only the default
// devices open, with AllDevices every device does.
func TestRealDevices(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("needs /dev/kmsg: %v", err)
	}
	if f, err := os.Open("/dev/kmsg"); err != nil {
		t.Skipf("/dev/kmsg cannot be opened even here: %v", err)
	} else {
		f.Close()
	}
	parent := testParent(t)
	for _, tc := range []struct {
		name string
		l    Limits
		want string
	}{
		{"default", Limits{}, "/dev/null open\n/dev/kmsg denied"},
		{"all", Limits{AllDevices: true}, "/dev/null open\n/dev/kmsg open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(parent, tc.name, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Create(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.Destroy(); err != nil {
					t.Error(err)
				}
			}()
			if got := probeDevices(t, c); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRealAddInvalidPid(t *testing.T) {
	needRoot(t)
	c, err := New(testParent(t), "badpid", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	for _, pid := range []int{0, -1} {
		if err := c.Add(pid); err == nil {
			t.Errorf("Add(%d) succeeded", pid)
		}
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func TestRealDestroyAfterKillWithoutReap(t *testing.T) {
	// The container just died and nobody reaped it yet: Destroy must not
	// fail because the kernel still lists or accounts the task briefly.
	needRoot(t)
	c, err := New(testParent(t), "dying", Limits{Memory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	cmd := startSleep(t)
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func TestRealDestroyBusy(t *testing.T) {
	needRoot(t)
	c, err := New(testParent(t), "busy", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	cmd := startSleep(t)
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.destroyWait = 0
	err = c.Destroy()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Destroy with a live task: %v", err)
	}
	if !c.Exists() {
		t.Fatal("busy cgroup removed")
	}
	// Destroy kills nothing.
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("task was killed: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func TestRealAlreadyExists(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	a, err := New(parent, "dup", Limits{PidsLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Destroy() })
	b, err := New(parent, "dup", Limits{PidsLimit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: %v, want ErrExist", err)
	}
	// The owner's cgroup is untouched.
	for _, p := range a.Paths() {
		if !exists(p) {
			t.Errorf("%s removed by the refused Create", p)
		}
	}
	if Mode() != "v2" {
		if got := readTrim(t, a.Paths()["pids"], "pids.max"); got != "10" {
			t.Errorf("pids.max = %q, want the owner's 10", got)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, a, true)
}

func TestRealConcurrentCreateSameName(t *testing.T) {
	// Exactly one of several racing Creates of one name wins.
	needRoot(t)
	parent := testParent(t)
	const n = 8
	errs := make([]error, n)
	cgs := make([]*Cgroup, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := New(parent, "same", Limits{})
			if err != nil {
				errs[i] = err
				return
			}
			cgs[i] = c
			errs[i] = c.Create()
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			if derr := cgs[i].Destroy(); derr != nil {
				t.Error(derr)
			}
		case !errors.Is(err, ErrExist):
			t.Errorf("Create %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d Creates succeeded, want 1", won)
	}
	assertGone(t, cgs[0], true)
}

func TestRealLoadDestroy(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	c, err := New(parent, "later", Limits{Memory: 16 << 20, PidsLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	l, err := Load(parent, "later")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Exists() {
		t.Fatal("Load: Exists() = false")
	}
	if p, ok := c.Paths()["cpuset"]; ok {
		// No --cpuset: the library copied cpus/mems from the parent, which
		// it populated from the hierarchy root.
		root := filepath.Dir(filepath.Dir(p))
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if got, want := readTrim(t, p, f), readTrim(t, root, f); got != want || got == "" {
				t.Errorf("%s/%s = %q, want %q as in %s", p, f, got, want, root)
			}
		}
	}
	// A task can join through Load's value too.
	cmd := startSleep(t)
	if err := l.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if fmt.Sprint(l.Paths()) != fmt.Sprint(c.Paths()) {
		t.Fatalf("Load paths %v != %v", l.Paths(), c.Paths())
	}
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
	// Teardown of something that never existed is success.
	never, err := Load(parent, "never")
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestRealParentKeptForSibling(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	var cs []*Cgroup
	for _, name := range []string{"a", "b"} {
		c, err := New(parent, name, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Create(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Destroy() })
		cs = append(cs, c)
	}
	if err := cs[0].Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, cs[0], false)
	for _, p := range cs[1].Paths() {
		if !exists(p) {
			t.Errorf("sibling dir %s removed", p)
		}
	}
	if err := cs[1].Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, cs[1], true)
}

func TestRealConcurrent(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	const n = 30
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs <- createAddDestroy(parent, fmt.Sprintf("c%d", i), i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	c, err := Load(parent, "c0")
	if err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func createAddDestroy(parent, name string, i int) error {
	l := Limits{Memory: 32 << 20, PidsLimit: 20, CPUShares: 256}
	if i%2 == 0 {
		l.CPUQuota = 20000
		l.Cpuset = "0"
	}
	c, err := New(parent, name, l)
	if err != nil {
		return err
	}
	if err := c.Create(); err != nil {
		return err
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		return errors.Join(err, c.Destroy())
	}
	addErr := c.Add(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return errors.Join(addErr, c.Destroy())
}

func TestRealConcurrentChurn(t *testing.T) {
	// 100 workers creating and destroying short-lived cgroups under one
	// parent: a Destroy removing the (momentarily empty) parent races with
	// Creates of siblings, which must retry instead of failing.
	needRoot(t)
	parent := testParent(t)
	const workers, rounds = 100, 5
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				c, err := New(parent, fmt.Sprintf("w%d-r%d", w, r), Limits{PidsLimit: 10, Cpuset: "0-1"})
				if err != nil {
					errs <- err
					return
				}
				if err := c.Create(); err != nil {
					errs <- err
					continue
				}
				if err := c.Destroy(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := Load(parent, "w0-r0")
	if err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func TestRealKernelRejectRollsBack(t *testing.T) {
	// A write the kernel refuses (quota below its 1ms minimum, which
	// Validate normally stops) fails Create with the limit and controller
	// named, and nothing is left behind.
	needRoot(t)
	c, err := New(testParent(t), "reject", Limits{Memory: 16 << 20, CPUQuota: 50000})
	if err != nil {
		t.Fatal(err)
	}
	c.limits.CPUQuota = 1
	err = c.Create()
	if err == nil {
		_ = c.Destroy()
		t.Fatal("Create with a 1µs quota succeeded")
	}
	if !strings.Contains(err.Error(), "cpu quota") || !strings.Contains(err.Error(), "cpu controller") {
		t.Fatalf("error does not name limit and controller: %v", err)
	}
	assertGone(t, c, true)
}

func TestRealMissingControllerNothingCreated(t *testing.T) {
	// As on a v1 host without the pids hierarchy mounted: the request is
	// refused before anything is created.
	needRoot(t)
	if Mode() == "v2" {
		t.Skip("v1 layout only")
	}
	c, err := New(testParent(t), "nopids", Limits{Memory: 16 << 20, PidsLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	delete(c.paths, "pids")
	err = c.Create()
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "pids limit") {
		t.Fatalf("Create: %v", err)
	}
	assertGone(t, c, true)
}

func TestRealOfflineCPU(t *testing.T) {
	needRoot(t)
	c, err := New(testParent(t), "offline", Limits{Cpuset: "65535"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err == nil || !strings.Contains(err.Error(), "not online") {
		_ = c.Destroy()
		t.Fatalf("Create with CPU 65535: %v", err)
	}
	assertGone(t, c, true)
}

func TestRealOOMKill(t *testing.T) {
	// Allocating past -m gets the process OOM-killed (no swap is allowed
	// on top of the limit).
	needRoot(t)
	c, err := New(testParent(t), "oom", Limits{Memory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{helperEnv + "=alloc"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper: %v, output %q", err, out.String())
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, output %q; want SIGKILL by the OOM killer", err, out.String())
	}
	dir, file := c.Paths()["memory"], "memory.oom_control"
	if Mode() == "v2" {
		dir, file = c.Paths()[""], "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "oom_kill ") || strings.Contains(string(data), "oom_kill 0\n") {
		t.Fatalf("%s shows no oom_kill:\n%s", file, data)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

const v2InnerEnv = "FOCKKER_CGROUP_TEST_V2_PARENT"

func TestRealV2OnPrivateMount(t *testing.T) {
	// Runs the v2 code path (fs2) on this kernel: in a private mount
	// namespace the host's cgroup2 hierarchy (the hybrid one, which only
	// has hugetlb) is mounted over /sys/fs/cgroup, so the package sees a
	// pure v2 host whose memory/cpu/cpuset/pids controllers are missing.
	needRoot(t)
	if Mode() != "hybrid" {
		t.Skip("needs a hybrid host (on v2 the other tests already take the v2 path)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not installed")
	}
	parent := testParent(t)
	// fs2 enables controllers in the root's cgroup.subtree_control; undo
	// what it adds so the host is left as it was.
	const rootCtl = "/sys/fs/cgroup/unified/cgroup.subtree_control"
	before := readTrim(t, filepath.Dir(rootCtl), filepath.Base(rootCtl))
	t.Cleanup(func() {
		after := readTrim(t, filepath.Dir(rootCtl), filepath.Base(rootCtl))
		for _, ctl := range strings.Fields(after) {
			if !slicesContains(strings.Fields(before), ctl) {
				if err := os.WriteFile(rootCtl, []byte("-"+ctl), 0o644); err != nil {
					t.Errorf("restore %s: %v", rootCtl, err)
				}
			}
		}
	})

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" -test.run='^TestRealV2Inner$' -test.v -test.count=1`,
		os.Args[0])
	cmd.Env = append(os.Environ(), v2InnerEnv+"="+parent)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRealV2Inner") {
		t.Fatalf("inner v2 test: %v\n%s", err, out)
	}
	t.Logf("inner v2 test:\n%s", out)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRealV2Inner(t *testing.T) {
	parent := os.Getenv(v2InnerEnv)
	if parent == "" {
		t.Skip("run by TestRealV2OnPrivateMount inside its mount namespace")
	}
	if m := Mode(); m != "v2" {
		t.Fatalf("Mode() = %q inside the cgroup2-only mount namespace", m)
	}
	// Every limit needs a controller this hierarchy lacks: refused before
	// anything is created.
	for _, l := range []Limits{{Memory: 16 << 20}, {PidsLimit: 5}, {CPUQuota: 50000}, {CPUShares: 100}, {Cpuset: "0"}} {
		c, err := New(parent, "v2", l)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Create()
		if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "/sys/fs/cgroup/cgroup.controllers") {
			t.Errorf("Create(%+v): %v, want ErrControllerUnavailable", l, err)
		}
		if c.Exists() || exists(filepath.Join("/sys/fs/cgroup", parent)) {
			t.Fatalf("Create(%+v) left something behind", l)
		}
	}

	c, err := New(parent, "v2", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	dir := filepath.Join("/sys/fs/cgroup", parent, "v2")
	if p := c.Paths(); len(p) != 1 || p[""] != dir {
		t.Fatalf("Paths() = %v, want {\"\": %s}", p, dir)
	}
	// fs2 enabled the available controllers down to our cgroup.
	if got := readTrim(t, dir, "cgroup.controllers"); !strings.Contains(got, "hugetlb") {
		t.Errorf("%s/cgroup.controllers = %q, want hugetlb enabled by the parents", dir, got)
	}
	if again, err := New(parent, "v2", Limits{}); err != nil {
		t.Fatal(err)
	} else if err := again.Create(); !errors.Is(err, ErrExist) {
		t.Errorf("second Create: %v, want ErrExist", err)
	}

	// The device rules are an eBPF program attached to the cgroup.
	if got, want := probeDevices(t, c), "/dev/null open\n/dev/kmsg denied"; got != want {
		t.Errorf("devices on v2: %q, want %q", got, want)
	}

	cmd := startSleep(t)
	if err := c.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	in, err := procCgroups(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + parent + "/v2"; in[""] != want {
		t.Errorf("/proc/%d/cgroup: 0::%s, want %s", cmd.Process.Pid, in[""], want)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// A child cloned into the cgroup through OpenFD (CLONE_INTO_CGROUP).
	f, err := c.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	in, err = procCgroups(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + parent + "/v2"; in[""] != want {
		t.Errorf("cloned into the cgroup: 0::%s, want %s", in[""], want)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}

func TestRealOpenFDCloneInto(t *testing.T) {
	// A child started with UseCgroupFD on OpenFD's directory is in the
	// cgroup (on the unified hierarchy) from its first instruction.
	needRoot(t)
	c, err := New(testParent(t), "cloneinto", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Paths()[""]; !ok {
		if _, err := c.OpenFD(); !errors.Is(err, ErrControllerUnavailable) {
			t.Fatalf("OpenFD without a unified hierarchy: %v", err)
		}
		t.Skip("no unified hierarchy on this host")
	}
	if err := c.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	f, err := c.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	in, err := procCgroups(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + c.parent + "/cloneinto"; in[""] != want {
		t.Errorf("/proc/%d/cgroup: 0::%s, want %s", cmd.Process.Pid, in[""], want)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c, true)
}
