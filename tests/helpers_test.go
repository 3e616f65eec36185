package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// with returns the same installation reporting to t (a subtest): fk's helpers call t.Fatal,
// which must be the running test's.
func (f *fk) with(t *testing.T) *fk {
	g := *f
	g.t = t
	return &g
}

// exec runs fockker like run, but is safe to call from any goroutine: it never calls t.Fatal.
func (f *fk) exec(args ...string) (result, error) {
	cmd := f.nsCommand(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		err = nil
	}
	return r, err
}

// fails runs a command that must fail with code and returns what it printed.
func (f *fk) fails(code int, args ...string) result {
	f.t.Helper()
	r := f.run(args...)
	if r.code != code {
		f.t.Fatalf("fockker %q: want exit %d, got %s", args, code, r)
	}
	return r
}

// detach starts a detached container and returns its record.
func (f *fk) detach(name string, args ...string) map[string]any {
	f.t.Helper()
	out := f.ok(append([]string{"run", "-d", "--name", name}, args...)...)
	if want := "Container " + name + " started\n"; out != want {
		f.t.Fatalf("run -d: printed %q, want %q", out, want)
	}
	return f.record(name)
}

// num reads an integer field of a record (JSON numbers decode as float64).
func num(t *testing.T, rec map[string]any, key string) int {
	t.Helper()
	v, ok := rec[key].(float64)
	if !ok {
		t.Fatalf("record field %q: %v (%T), want a number", key, rec[key], rec[key])
	}
	return int(v)
}

// configPath is a container's config.json in this installation.
func (f *fk) configPath(name string) string {
	return filepath.Join(f.state, name, "config.json")
}

// editRecord rewrites fields of a container's config.json by hand (simulating what the
// engine cannot prevent: crashes, PID reuse).
func (f *fk) editRecord(name string, fields map[string]any) {
	f.t.Helper()
	p := f.configPath(name)
	b, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatal(err)
	}
	for k, v := range fields {
		rec[k] = v
	}
	if b, err = json.Marshal(rec); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// procStatus parses /proc/<pid>/status; nil when the process does not exist.
func procStatus(pid int) map[string]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// procGone reports whether pid no longer names a live process (a zombie counts as gone).
func procGone(pid int) bool {
	st := procStatus(pid)
	return st == nil || strings.HasPrefix(st["State"], "Z") || strings.HasPrefix(st["State"], "X")
}

// procSession returns the session ID of pid (field 6 of /proc/<pid>/stat).
func procSession(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, err := strconv.Atoi(f[3]) // state ppid pgrp session
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupFile reads one file of a container's cgroup.
func cgroupFile(t *testing.T, ctrl, name, file string) string {
	t.Helper()
	return readTrim(t, filepath.Join(cgroupDir(ctrl, name), file))
}

// cgroupsOf lists every cgroup directory that exists for the given names in any hierarchy,
// including what a name with "/" or ".." would resolve to.
func cgroupsOf(names ...string) []string {
	var out []string
	for _, n := range names {
		if n == "" {
			continue
		}
		for _, pat := range []string{"/sys/fs/cgroup/*/fockker/", "/sys/fs/cgroup/fockker/"} {
			m, _ := filepath.Glob(pat + n)
			out = append(out, m...)
		}
	}
	sort.Strings(out)
	return out
}

// treeSnapshot records every entry under root (not following symlinks): type, mode, size,
// symlink target and a hash of regular files' contents. A state root's spare record
// directory (".spare", emptied by a removal and kept for the next reservation) is not
// recorded while it is empty: whether a run took it or left it holds nothing. Whatever it
// holds is recorded.
func treeSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipAll
			}
			return err
		}
		if p == filepath.Join(root, ".spare") && d.IsDir() {
			if ents, err := os.ReadDir(p); err == nil && len(ents) == 0 {
				return filepath.SkipDir
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			fh, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, fh)
			fh.Close()
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %s", fi.Size(), hex.EncodeToString(h.Sum(nil))[:16])
		case fi.Mode()&fs.ModeDevice != 0:
			st := fi.Sys().(*syscall.Stat_t)
			desc += fmt.Sprintf(" dev %d", st.Rdev)
		}
		rel, _ := filepath.Rel(root, p)
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return snap
}

// diffSnapshots describes how two snapshots differ; empty when they are equal.
func diffSnapshots(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, fmt.Sprintf("changed %s: %s -> %s", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// hostMounts returns the lines of the test process's mountinfo that mention s.
func hostMounts(t *testing.T, s string) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return grepLines(string(mi), s)
}

// sleeper starts a host process that is not a container and is killed when the test ends;
// it stands in for "some other process that now has the PID".
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startTimeOf returns field 22 of /proc/<pid>/stat.
func startTimeOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// execCmd runs a host command and returns its combined output.
func execCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
