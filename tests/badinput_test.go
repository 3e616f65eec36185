package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput runs `run` with bad input and checks, for each case: exit 125, a clear word
// on stderr, and nothing changed — state root, image root, cgroups, mounts, host paths.
func TestBadInput(t *testing.T) {
	f := newFK(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "must-not-be-created")
	envFile := filepath.Join(dir, "no-such-env-file")
	badEnvFile := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(badEnvFile, []byte("A=1\n=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A running container whose name the duplicate case reuses; it must keep running.
	first := uniq("first")
	frec := f.detach(first, "busybox", "sleep", "100")
	fpid := num(t, frec, "pid")

	long := strings.Repeat("a", 65)
	tests := []struct {
		name   string
		args   []string // after "run"
		stderr string   // what stderr must mention
		names  []string // cgroup names that must not appear
	}{
		{"name with space", []string{"--name", "bad name", "busybox", "true"}, "bad name", []string{"bad name"}},
		{"name ../x", []string{"--name", "../x", "busybox", "true"}, "../x", []string{"../x", "x"}},
		{"name a/b", []string{"--name", "a/b", "busybox", "true"}, "a/b", []string{"a/b"}},
		{"name with comma", []string{"--name", "a,b", "busybox", "true"}, "a,b", []string{"a,b"}},
		{"name starting with _", []string{"--name", "_x", "busybox", "true"}, "_x", []string{"_x"}},
		{"name of 65 chars", []string{"--name", long, "busybox", "true"}, long, []string{long}},
		{"duplicate name", []string{"--name", first, "busybox", "true"}, "already in use", nil},
		{"duplicate name detached", []string{"-d", "--name", first, "busybox", "true"}, "already in use", nil},
		{"missing image", []string{"--name", "@", "no-such-image", "true"}, "no-such-image", nil},
		{"missing image detached", []string{"-d", "--name", "@", "no-such-image", "true"}, "no-such-image", nil},
		{"image ../busybox", []string{"--name", "@", "../busybox", "true"}, "../busybox", nil},
		{"no image", []string{"--name", "@"}, "image", nil},
		{"no command", []string{"--name", "@", "busybox"}, "command", nil},
		{"memory 10x", []string{"--name", "@", "-m", "10x", "busybox", "true"}, "10x", nil},
		{"memory -1", []string{"--name", "@", "-m", "-1", "busybox", "true"}, "-1", nil},
		{"memory 0", []string{"--name", "@", "-m", "0", "busybox", "true"}, "memory", nil},
		{"memory detached", []string{"-d", "--name", "@", "-m", "lots", "busybox", "true"}, "lots", nil},
		{"cpus 0", []string{"--name", "@", "--cpus", "0", "busybox", "true"}, "cpus", nil},
		{"cpus -1", []string{"--name", "@", "--cpus", "-1", "busybox", "true"}, "cpus", nil},
		{"cpus abc", []string{"--name", "@", "--cpus", "abc", "busybox", "true"}, "abc", nil},
		{"cpushare 1", []string{"--name", "@", "--cpushare", "1", "busybox", "true"}, "shares", nil},
		{"cpuset abc", []string{"--name", "@", "--cpuset", "abc", "busybox", "true"}, "abc", nil},
		{"cpuset offline cpu", []string{"--name", "@", "--cpuset", "1023", "busybox", "true"}, "1023", nil},
		{"pids-limit 0", []string{"--name", "@", "--pids-limit", "0", "busybox", "true"}, "--pids-limit", nil},
		{"pids-limit -1", []string{"--name", "@", "--pids-limit", "-1", "busybox", "true"}, "--pids-limit", nil},
		{"relative volume target", []string{"--name", "@", "-v", missing + ":rel/dir", "busybox", "true"}, "rel/dir", nil},
		{"relative volume host", []string{"--name", "@", "-v", "rel:/x", "busybox", "true"}, "rel:/x", nil},
		{"volume without colon", []string{"--name", "@", "-v", missing, "busybox", "true"}, missing, nil},
		{"volume bad mode", []string{"--name", "@", "-v", missing + ":/x:rx", "busybox", "true"}, "rx", nil},
		{"volume over root", []string{"--name", "@", "-v", missing + ":/", "busybox", "true"}, "root", nil},
		{"volume target twice", []string{"--name", "@", "-v", missing + ":/x", "-v", missing + "2:/x", "busybox", "true"}, "/x", nil},
		{"volume host not creatable", []string{"--name", "@", "-v", "/etc/passwd/sub:/x", "busybox", "true"}, "/etc/passwd/sub", nil},
		{"volume host not creatable detached", []string{"-d", "--name", "@", "-v", "/etc/passwd/sub:/x", "busybox", "true"}, "/etc/passwd/sub", nil},
		{"detach with -it", []string{"--name", "@", "-d", "-it", "busybox", "sh"}, "-d", nil},
		{"detach with -t", []string{"--name", "@", "-d", "-t", "busybox", "sh"}, "-d", nil},
		{"relative workdir", []string{"--name", "@", "-w", "rel", "busybox", "true"}, "rel", nil},
		{"bad hostname", []string{"--name", "@", "--hostname", "-bad-", "busybox", "true"}, "-bad-", nil},
		{"bad env", []string{"--name", "@", "-e", "=x", "busybox", "true"}, "=x", nil},
		{"missing env file", []string{"--name", "@", "--env-file", envFile, "busybox", "true"}, envFile, nil},
		{"unknown flag", []string{"--name", "@", "--no-such-flag", "busybox", "true"}, "no-such-flag", nil},
		{"env key with a newline", []string{"--name", "@", "-e", "A\nB=1", "busybox", "true"}, "KEY=VALUE", nil},
		{"env file with a bad line", []string{"--name", "@", "--env-file", badEnvFile, "busybox", "true"}, badEnvFile + ":2", nil},
		{"memory too large", []string{"--name", "@", "-m", "99999999999999t", "busybox", "true"}, "too large", nil},
		{"cpus more than the machine has", []string{"--name", "@", "--cpus", "100000", "busybox", "true"}, "100000", nil},
		{"cpuset reversed", []string{"--name", "@", "--cpuset", "1-0", "busybox", "true"}, "reversed", nil},
		{"cpushare too large", []string{"--name", "@", "--cpushare", "300000", "busybox", "true"}, "shares", nil},
		{"hostname too long", []string{"--name", "@", "--hostname", long, "busybox", "true"}, long, nil},
		{"volume host with ..", []string{"--name", "@", "-v", "../x:/y", "busybox", "true"}, "../x:/y", nil},
		{"volume target /..", []string{"--name", "@", "-v", missing + ":/..", "busybox", "true"}, "root", nil},
		{"name reserved for networks", []string{"--name", "network", "busybox", "true"}, "reserved", []string{"network"}},
		{"publish port 0", []string{"--name", "@", "-p", "0:80", "busybox", "true"}, "0:80", nil},
		{"publish without container port", []string{"--name", "@", "-p", "8080", "busybox", "true"}, "8080", nil},
		{"publish port too large", []string{"--name", "@", "-p", "70000:80", "busybox", "true"}, "70000", nil},
		{"publish sctp", []string{"--name", "@", "-p", "80:80/sctp", "busybox", "true"}, "sctp", nil},
		{"publish a host port twice", []string{"--name", "@", "-p", "8080:80", "-p", "8080:81", "busybox", "true"}, "twice", nil},
		{"publish with --net none", []string{"--name", "@", "--net", "none", "-p", "80:80", "busybox", "true"}, "--net none", nil},
		{"network name with a slash", []string{"--name", "@", "--net", "a/b", "busybox", "true"}, "a/b", nil},
		{"network name too long", []string{"--name", "@", "--net", "abcdefghijklmnop", "busybox", "true"}, "abcdefghijklmnop", nil},
		{"missing network", []string{"--name", "@", "--net", "nosuchnet", "busybox", "true"}, "nosuchnet", nil},
		{"missing network detached", []string{"-d", "--name", "@", "--net", "nosuchnet", "busybox", "true"}, "nosuchnet", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			// "@" stands for a fresh valid name, so that anything created would be findable.
			name := uniq("bad")
			args := append([]string{"run"}, tc.args...)
			for i, a := range args {
				if a == "@" {
					args[i] = name
				}
			}
			names := append([]string{name}, tc.names...)
			stateBefore := treeSnapshot(t, f.state)
			imageBefore := treeSnapshot(t, f.image)
			cgBefore := cgroupsOf(names...)
			firstCg := readTrim(t, filepath.Join(cgroupDir("pids", first), "cgroup.procs"))

			r := f.run(args...)
			if r.code != 125 {
				t.Fatalf("want exit 125: %s", r)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tc.stderr)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("crash: %s", r.stderr)
			}
			if r.stdout != "" && !strings.Contains(tc.name, "flag") {
				t.Errorf("stdout %q on a failure", r.stdout)
			}
			if d := diffSnapshots(stateBefore, treeSnapshot(t, f.state)); len(d) > 0 {
				t.Errorf("state root changed: %v", d)
			}
			if d := diffSnapshots(imageBefore, treeSnapshot(t, f.image)); len(d) > 0 {
				t.Errorf("image root changed: %v", d)
			}
			if cg := cgroupsOf(names...); strings.Join(cg, " ") != strings.Join(cgBefore, " ") {
				t.Errorf("cgroups changed: %v -> %v", cgBefore, cg)
			}
			if m := hostMounts(t, f.image); m != "" {
				t.Errorf("mounts left:\n%s", m)
			}
			for _, p := range []string{missing, missing + "2", "/etc/passwd/sub"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was created", p)
				}
			}
			// The first container is untouched: same process, same cgroup members.
			if procGone(fpid) {
				t.Fatalf("the running container %s died", first)
			}
			if got := readTrim(t, filepath.Join(cgroupDir("pids", first), "cgroup.procs")); got != firstCg {
				t.Errorf("the running container's cgroup changed: %q -> %q", firstCg, got)
			}
		})
	}
	if rec := f.record(first); rec["status"] != "running" || num(t, rec, "pid") != fpid {
		t.Errorf("the first container's record changed: %v", rec)
	}
}

// TestBadCommands checks the other commands' bad input: unknown names, missing arguments,
// bad flags — exit 125, a message, nothing changed.
func TestBadCommands(t *testing.T) {
	f := newFK(t)
	name := uniq("keep")
	f.detach(name, "busybox", "sleep", "100")
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"stop unknown", []string{"stop", "nope-" + name}, "no such container"},
		{"stop nothing", []string{"stop"}, "required"},
		{"stop negative timeout", []string{"stop", "-t", "-1", name}, "-1"},
		{"rm unknown", []string{"rm", "nope-" + name}, "no such container"},
		{"rm nothing", []string{"rm"}, "required"},
		{"rm path", []string{"rm", "../" + name}, "no such container"},
		{"logs unknown", []string{"logs", "nope"}, "no such container"},
		{"logs two names", []string{"logs", name, name}, "exactly one"},
		{"inspect unknown", []string{"inspect", "nope"}, "no such container"},
		{"inspect empty", []string{"inspect", ""}, "no such container"},
		{"ps with an argument", []string{"ps", "x"}, "no arguments"},
		{"unknown command", []string{"frobnicate"}, "frobnicate"},
		{"relative state root", []string{"--state-root", "rel", "ps"}, "rel"},
		{"stop timeout too large", []string{"stop", "-t", "99999999999", name}, "99999999999"},
		{"system prune with an argument", []string{"system", "prune", "x"}, "no arguments"},
		{"system prune negative wait", []string{"system", "prune", "--wait", "-1s"}, "--wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			before := treeSnapshot(t, f.state)
			r := f.run(tc.args...)
			if r.code != 125 && !(tc.name == "unknown command" && r.code != 0) {
				t.Fatalf("want exit 125: %s", r)
			}
			if !strings.Contains(r.stderr+r.stdout, tc.stderr) {
				t.Errorf("output does not mention %q: %s", tc.stderr, r)
			}
			if d := diffSnapshots(before, treeSnapshot(t, f.state)); len(d) > 0 {
				t.Errorf("state changed: %v", d)
			}
			if st := f.record(name)["status"]; st != "running" {
				t.Errorf("the container is %v", st)
			}
		})
	}
}
