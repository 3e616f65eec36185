// Package tests holds fockker's black-box tests: they run the built binary as root and ask
// the kernel (/proc, cgroupfs, mountinfo) and the container itself what is true.
package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// netnsMarker tells a re-executed test binary that it already runs in its own network
// namespace.
const netnsMarker = "FOCKKER_TEST_IN_NETNS"

// env is what every test shares: the binary under test and the busybox image.
type env struct {
	bin      string // the fockker binary
	imageSrc string // the busybox image directory every installation links to
	skipWhy  string // why the black-box tests cannot run here
}

var shared env // set once in TestMain, read-only afterwards

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		shared.skipWhy = "black-box tests need root (namespaces, mounts, cgroups)"
		return m.Run()
	}
	// Run the whole suite in a network namespace of its own, made here, so nothing a test
	// does can touch the machine's own network.
	if os.Getenv(netnsMarker) == "" {
		cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), netnsMarker+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			fmt.Fprintln(os.Stderr, "tests: re-exec in a new network namespace:", err)
			return 1
		}
		return 0
	}
	work, err := os.MkdirTemp("", "fockker-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	shared.bin = os.Getenv("FOCKKER_BIN")
	if shared.bin == "" {
		shared.bin = filepath.Join(work, "fockker")
		_, file, _, _ := runtime.Caller(0)
		build := exec.Command("go", "build", "-o", shared.bin, ".")
		build.Dir = filepath.Dir(filepath.Dir(file))
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "tests: build fockker: %v\n%s", err, out)
			return 1
		}
	}
	if abs, err := filepath.Abs(shared.bin); err == nil {
		shared.bin = abs
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(filepath.Dir(file)), "scripts", "busybox-image.sh")
	if out, err := exec.Command(script, work).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: build busybox image: %v\n%s", err, out)
		return 1
	}
	shared.imageSrc = filepath.Join(work, "busybox")
	code := m.Run()
	// Containers leave the shared parent cgroup for the next one, as docker does; the suite
	// leaves nothing, so it goes once empty (fockker system prune does the same).
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/fockker")
	for _, p := range append(parents, "/sys/fs/cgroup/fockker") {
		_ = unix.Rmdir(p) // in use (another suite) or absent: left alone
	}
	return code
}

// fk is one fockker installation private to a test: its own state and image roots.
type fk struct {
	t     *testing.T
	state string
	image string
	env   []string // extra environment for every command
	netns string   // /proc/<holder>/ns/net: the test's own network namespace
}

// newFK skips the test without root and returns a fresh installation whose containers are all
// force-removed, and checked gone, when the test ends.
func newFK(t *testing.T) *fk {
	t.Helper()
	if shared.skipWhy != "" {
		t.Skip(shared.skipWhy)
	}
	dir := t.TempDir()
	f := &fk{t: t, state: filepath.Join(dir, "state"), image: filepath.Join(dir, "images")}
	if err := os.MkdirAll(f.image, 0o755); err != nil {
		t.Fatal(err)
	}
	// Containers never write to their image (overlay's lower dir), so all installations can
	// share one: the test that checks the image stays untouched proves it.
	if err := os.Symlink(shared.imageSrc, filepath.Join(f.image, "busybox")); err != nil {
		t.Fatal(err)
	}
	// Every installation gets a network namespace of its own, held by a sleeping process:
	// its bridges, veths and iptables rules vanish with it, and two tests' default networks
	// (both 192.168.0.1/24) never meet.
	holder := exec.Command("unshare", "--net", "--", "sleep", "1000000")
	if err := holder.Start(); err != nil {
		t.Fatalf("network namespace for the test: %v", err)
	}
	f.netns = fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	waitNetns(t, f.netns)
	if out, err := exec.Command("nsenter", "--net="+f.netns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in the test's namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	t.Cleanup(func() {
		res := f.run("ps", "-q")
		for _, id := range strings.Fields(res.stdout) {
			f.run("rm", "-f", id)
		}
		f.assertNoResidue()
	})
	return f
}

// result is what one fockker command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// run runs fockker with this installation's roots and returns what it printed.
func (f *fk) run(args ...string) result {
	return f.runIn(nil, args...)
}

func (f *fk) runIn(stdin []byte, args ...string) result {
	f.t.Helper()
	full := append([]string{"--net=" + f.netns, "--", shared.bin, "--state-root", f.state, "--image-root", f.image}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C"}, f.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("fockker %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs a command that must succeed and returns its stdout.
func (f *fk) ok(args ...string) string {
	f.t.Helper()
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("fockker %q: %s", args, r)
	}
	return r.stdout
}

// record returns a container's record through `inspect`.
func (f *fk) record(name string) map[string]any {
	f.t.Helper()
	var recs []map[string]any
	out := f.ok("inspect", name)
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 1 {
		f.t.Fatalf("inspect %s: %v: %s", name, err, out)
	}
	return recs[0]
}

// waitStatus polls ps until the container has the status (ps reconciles with the kernel).
func (f *fk) waitStatus(name, status string, timeout time.Duration) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rec := f.record(name)
		if rec["status"] == status {
			return rec
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("container %s: status %v, want %s", name, rec["status"], status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uniq returns a name unique to this test run (cgroups are machine-wide).
func uniq(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// cgroupDir is the cgroup dir of a container for one controller on this machine.
func cgroupDir(ctrl, name string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup/fockker", name) // unified
	}
	return filepath.Join("/sys/fs/cgroup", ctrl, "fockker", name)
}

// assertNoResidue checks, from the kernel's view, that nothing of this installation is left:
// no mount, no layer directory, no record, no cgroup of a container it named.
func (f *fk) assertNoResidue() {
	f.t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		f.t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(f.image)) {
		f.t.Errorf("mounts of %s left behind:\n%s", f.image, grepLines(string(mi), f.image))
	}
	for _, sub := range []string{"mnt", "writeLayer", "workLayer"} {
		ents, _ := os.ReadDir(filepath.Join(f.image, sub))
		if len(ents) > 0 {
			f.t.Errorf("%s/%s not empty: %v", f.image, sub, ents)
		}
	}
	ents, _ := os.ReadDir(f.state)
	for _, e := range ents {
		if e.Name() != "network" && !f.emptySpare(e) {
			f.t.Errorf("state left behind: %s/%s", f.state, e.Name())
		}
	}
}

// emptySpare reports whether e, an entry of the state root, is its spare record directory
// (".spare", what a removal leaves for the next reservation to reuse), empty; a spare that
// holds anything is an error.
func (f *fk) emptySpare(e os.DirEntry) bool {
	if e.Name() != ".spare" || !e.IsDir() {
		return false
	}
	if ents, err := os.ReadDir(filepath.Join(f.state, e.Name())); err != nil || len(ents) > 0 {
		f.t.Errorf("spare record directory holds %v (%v)", ents, err)
	}
	return true
}

// waitNetns waits until the holder has left our network namespace for its own.
func waitNetns(t *testing.T, path string) {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if l, err := os.Readlink(path); err == nil && l != self {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s never became a namespace of its own", path)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// assertCgroupGone checks that no hierarchy has the container's cgroup any more.
func assertCgroupGone(t *testing.T, name string) {
	t.Helper()
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/fockker/" + name)
	if m2, _ := filepath.Glob("/sys/fs/cgroup/fockker/" + name); len(m2) > 0 {
		matches = append(matches, m2...)
	}
	if len(matches) > 0 {
		t.Errorf("cgroup of %s left behind: %v", name, matches)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// inNetns runs a host command inside the test's network namespace (ip, iptables, nc...).
func (f *fk) inNetns(args ...string) (string, error) {
	f.t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + f.netns, "--"}, args...)...).CombinedOutput()
	return string(out), err
}

// nsCommand builds a fockker command that runs in the test's network namespace, like run,
// for callers that need the process itself (concurrency, a pty).
func (f *fk) nsCommand(args ...string) *exec.Cmd {
	full := append([]string{"--net=" + f.netns, "--", shared.bin, "--state-root", f.state, "--image-root", f.image}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C"}, f.env...)
	return cmd
}
