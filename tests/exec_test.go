package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// cmdlineOf returns a process's argv, nil if it is gone.
func cmdlineOf(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// nsLink is the namespace link of a process (/proc/PID/ns/KIND), "" if it is gone.
func nsLink(pid int, kind string) string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	return l
}

// findInContainer returns the host PID of the process with argv want that lives in the PID
// namespace of the container's init, or 0.
func findInContainer(initPid int, want ...string) int {
	pidns := nsLink(initPid, "pid")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == initPid {
			continue
		}
		if strings.Join(cmdlineOf(pid), "\x00") == strings.Join(want, "\x00") && nsLink(pid, "pid") == pidns {
			return pid
		}
	}
	return 0
}

// marker returns a path, unique to this test, that no command may create, and checks at
// the end of the test that it was not created on the host.
func marker(t *testing.T) string {
	t.Helper()
	p := "/tmp/" + uniq("fockker-marker")
	t.Cleanup(func() {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("marker %s exists on the host (%v): the command ran there", p, err)
			os.Remove(p)
		}
	})
	return p
}

// TestExecSeesTheContainer: processes, hostname, network, files and environment seen by an
// exec'd command are the container's.
func TestExecSeesTheContainer(t *testing.T) {
	f := newFK(t)
	f.env = append(f.env, "FOCKKER_TEST_HOST_ONLY=leak")
	name := uniq("ex")
	rec := f.detach(name, "-e", "A=1", "-e", "B=x y", "-w", "/tmp", "busybox", "sh", "-c", "echo made inside > /tmp/inside; exec sleep 1000")
	hostOnly := "/tmp/" + uniq("fockker-hostonly")
	if err := os.WriteFile(hostOnly, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(hostOnly)

	t.Run("ps lists the container's processes only", func(t *testing.T) {
		out := f.with(t).ok("exec", name, "ps", "-o", "pid,comm")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("ps in the container lists more than init and ps:\n%s", out)
		}
		if fs := strings.Fields(lines[1]); fs[0] != "1" || fs[1] != "sleep" {
			t.Errorf("PID 1 is %q, want the container's sleep", lines[1])
		}
		if fs := strings.Fields(lines[2]); fs[1] != "ps" {
			t.Errorf("second process %q, want ps", lines[2])
		}
	})
	t.Run("hostname", func(t *testing.T) {
		if out := f.with(t).ok("exec", name, "hostname"); out != name+"\n" {
			t.Errorf("hostname %q, want %q", out, name)
		}
	})
	t.Run("network", func(t *testing.T) {
		out := f.with(t).ok("exec", name, "ip", "-o", "-4", "addr", "show", "eth0")
		if !strings.Contains(out, " "+rec["ip"].(string)+"/24 ") {
			t.Errorf("eth0: %q, want %s", out, rec["ip"])
		}
	})
	t.Run("files", func(t *testing.T) {
		f := f.with(t)
		if out := f.ok("exec", name, "cat", "/tmp/inside"); out != "made inside\n" {
			t.Errorf("file written by the container reads %q", out)
		}
		if r := f.run("exec", name, "cat", hostOnly); r.code == 0 || r.stdout != "" {
			t.Errorf("exec sees the host's %s: %s", hostOnly, r)
		}
		if host, err := os.ReadFile("/etc/hostname"); err == nil {
			if r := f.run("exec", name, "cat", "/etc/hostname"); r.code == 0 && r.stdout == string(host) {
				t.Errorf("exec reads the host's /etc/hostname %q", host)
			}
		}
		f.ok("exec", name, "sh", "-c", "echo by exec > /tmp/by-exec")
		if b, err := os.ReadFile(filepath.Join(f.image, "writeLayer", name, "tmp", "by-exec")); err != nil || string(b) != "by exec\n" {
			t.Errorf("file written by exec is not in the container's layer: %q, %v", b, err)
		}
		if _, err := os.Stat("/tmp/by-exec"); err == nil {
			t.Errorf("exec wrote /tmp/by-exec on the host")
		}
	})
	t.Run("working directory", func(t *testing.T) {
		f := f.with(t)
		if out := f.ok("exec", name, "pwd"); out != "/tmp\n" {
			t.Errorf("default working directory %q, want the container's /tmp", out)
		}
		if out := f.ok("exec", "-w", "/etc", name, "pwd"); out != "/etc\n" {
			t.Errorf("-w /etc: %q", out)
		}
		f.fails(125, "exec", "-w", "etc", name, "pwd")
		if r := f.run("exec", "-w", "/no/such/dir", name, "pwd"); r.code == 0 || r.stdout != "" {
			t.Errorf("-w to a missing directory: %s", r)
		}
	})
	t.Run("environment", func(t *testing.T) {
		// The container's environment is its init's, read by the host here; exec -e adds to
		// and overrides it; nothing of fockker's own environment leaks in.
		f := f.with(t)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", num(t, rec, "pid")))
		if err != nil {
			t.Fatal(err)
		}
		initEnv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		sort.Strings(initEnv)
		has := map[string]bool{}
		for _, kv := range initEnv {
			has[kv] = true
		}
		for _, kv := range []string{"A=1", "B=x y", "HOME=/root", "HOSTNAME=" + name, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
			if !has[kv] {
				t.Errorf("container's init lacks %q: %q", kv, initEnv)
			}
		}
		env := func(args ...string) []string {
			out := f.ok(append(append([]string{"exec"}, args...), name, "env")...)
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			sort.Strings(got)
			return got
		}
		if got := env(); strings.Join(got, "|") != strings.Join(initEnv, "|") {
			t.Errorf("exec env:\n%q\nthe container's:\n%q", got, initEnv)
		}
		var want []string
		for _, kv := range initEnv {
			if !strings.HasPrefix(kv, "A=") {
				want = append(want, kv)
			}
		}
		want = append(want, "A=2", "C=3,4")
		sort.Strings(want)
		got := env("-e", "A=2", "-e", "C=3,4")
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("exec -e env:\n%q\nwant:\n%q", got, want)
		}
		if strings.Contains(strings.Join(got, "\n"), "FOCKKER_TEST_HOST_ONLY") {
			t.Errorf("fockker's environment leaked into exec: %q", got)
		}
	})
}

// TestExecProcess: the exec'd process joins the container's namespaces, root, cgroup and
// restrictions; exec -d leaves it running there.
func TestExecProcess(t *testing.T) {
	f := newFK(t)
	name := uniq("exd")
	rec := f.detach(name, "busybox", "sleep", "1000")
	initPid := num(t, rec, "pid")
	if out := f.ok("exec", "-d", name, "sleep", "777"); out != "" {
		t.Errorf("exec -d printed %q", out)
	}
	var pid int
	waitFor(t, "the exec'd sleep in the container", 10*time.Second, func() bool {
		pid = findInContainer(initPid, "sleep", "777")
		return pid != 0
	})
	for _, kind := range []string{"mnt", "uts", "ipc", "net", "pid"} {
		if a, b := nsLink(pid, kind), nsLink(initPid, kind); a != b || a == "" {
			t.Errorf("%s namespace: exec'd %s, container %s", kind, a, b)
		}
		if nsLink(pid, kind) == nsLink(os.Getpid(), kind) {
			t.Errorf("exec'd process shares the test's %s namespace", kind)
		}
	}
	var rootA, rootB syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/root/", pid), &rootA); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/root/", initPid), &rootB); err != nil {
		t.Fatal(err)
	}
	if rootA.Dev != rootB.Dev || rootA.Ino != rootB.Ino {
		t.Errorf("exec'd root %d:%d, container root %d:%d", rootA.Dev, rootA.Ino, rootB.Dev, rootB.Ino)
	}
	cgA, cgB := readTrim(t, fmt.Sprintf("/proc/%d/cgroup", pid)), readTrim(t, fmt.Sprintf("/proc/%d/cgroup", initPid))
	if cgA != cgB {
		t.Errorf("exec'd process cgroups:\n%s\ncontainer's:\n%s", cgA, cgB)
	}
	if !strings.Contains(cgA, "/fockker/"+name) {
		t.Errorf("cgroups of the container do not name it:\n%s", cgA)
	}
	if tasks := readTrim(t, filepath.Join(cgroupDir("pids", name), "cgroup.procs")); !strings.Contains("\n"+tasks+"\n", "\n"+strconv.Itoa(pid)+"\n") {
		t.Errorf("pid %d is not in the container's pids cgroup: %q", pid, tasks)
	}
	stA, stB := procStatus(pid), procStatus(initPid)
	for _, k := range []string{"Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
		if stA[k] != stB[k] {
			t.Errorf("%s: exec'd %q, container %q", k, stA[k], stB[k])
		}
	}
	// It is seen from inside, and stays after fockker exec has returned.
	if out := f.ok("exec", name, "ps", "-o", "comm,args"); !strings.Contains(out, "sleep 777") {
		t.Errorf("the container does not see the exec -d process:\n%s", out)
	}
	if procGone(pid) {
		t.Error("exec -d process is gone")
	}
	// It goes with the container.
	f.ok("rm", "-f", name)
	waitFor(t, "the exec'd process to die with its container", 10*time.Second, func() bool { return procGone(pid) })
}

// TestExecExitCodesAndArgv: the exit code and argv pass through unchanged.
func TestExecExitCodesAndArgv(t *testing.T) {
	f := newFK(t)
	name := uniq("codes")
	f.detach(name, "busybox", "sleep", "1000")
	for _, c := range []struct {
		why  string
		args []string
		code int
	}{
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"false", []string{"false"}, 1},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -9 $$"}, 137},
		{"not found", []string{"no-such-command"}, 127},
		{"missing path", []string{"/no/such/file"}, 127},
		{"not executable", []string{"/etc/passwd"}, 126},
		{"a directory", []string{"/tmp"}, 126},
	} {
		t.Run(c.why, func(t *testing.T) {
			r := f.with(t).run(append([]string{"exec", name}, c.args...)...)
			if r.code != c.code {
				t.Errorf("want exit %d, got %s", c.code, r)
			}
		})
	}
	args := []string{"a b", `"double"`, "it's", "", "$HOME", "*", "x\ny", "-e", "--", ";echo injected"}
	out := f.ok(append([]string{"exec", name, "printf", "[%s]"}, args...)...)
	want := ""
	for _, a := range args {
		want += "[" + a + "]"
	}
	if out != want {
		t.Errorf("argv came through as %q, want %q", out, want)
	}
	// stdin streams through with -i.
	if r := f.runIn([]byte("line one\nline two\n"), "exec", "-i", name, "sh", "-c", "cat; exit 4"); r.code != 4 || r.stdout != "line one\nline two\n" {
		t.Errorf("exec -i: %s", r)
	}
}

// TestExecTerminal: exec -it runs a shell on a pseudo-terminal.
func TestExecTerminal(t *testing.T) {
	f := newFK(t)
	name := uniq("tty")
	f.detach(name, "busybox", "sleep", "1000")
	cmd := f.nsCommand("exec", "-it", name, "sh")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var buf bytes.Buffer
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptmx.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	expect := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(output(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on the terminal; got %q", what, output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The typed line echoes as "$((6*7))X"; only the shell's answer contains 42X.
	ptmx.WriteString("echo $((6*7))X\n")
	expect("42X")
	ptmx.WriteString("tty; echo T=$TERM; hostname\n")
	expect("/dev/pts/")
	expect("T=xterm")
	expect(name)
	ptmx.WriteString("exit 7\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("exec -it did not end; terminal: %q", output())
	}
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("exec -it exit code %d, want 7; terminal: %q", code, output())
	}
}

// TestExecRefused: a stopped container, a missing one, and one whose recorded PID now
// belongs to another process get nothing: exit 125, and the command runs nowhere.
func TestExecRefused(t *testing.T) {
	f := newFK(t)
	stopped := uniq("stopped")
	f.detach(stopped, "busybox", "true")
	f.waitStatus(stopped, "stopped", 20*time.Second)
	reused := uniq("reused")
	rec := f.detach(reused, "busybox", "sleep", "1000")
	other := sleeper(t)
	orig, err := os.ReadFile(f.configPath(reused))
	if err != nil {
		t.Fatal(err)
	}
	f.editRecord(reused, map[string]any{"pid": other.Process.Pid})
	defer func() {
		// Put the true record back, so that cleanup finds and removes the real init.
		if err := os.WriteFile(f.configPath(reused), orig, 0o600); err != nil {
			t.Error(err)
		}
		if now := f.record(reused); now["pid"] != rec["pid"] || now["status"] != "running" {
			t.Errorf("record after restoring: %v", now)
		}
	}()

	// A record forged to name a host process, start time included: the PID check passes,
	// and only the refusal to join a namespace that is the caller's own keeps the command off
	// the host.
	forged := uniq("forged")
	recF := f.detach(forged, "busybox", "sleep", "1000")
	origF, err := os.ReadFile(f.configPath(forged))
	if err != nil {
		t.Fatal(err)
	}
	f.editRecord(forged, map[string]any{"pid": other.Process.Pid, "startTime": startTimeOf(t, other.Process.Pid)})
	defer func() {
		if err := os.WriteFile(f.configPath(forged), origF, 0o600); err != nil {
			t.Error(err)
		}
		if now := f.record(forged); now["pid"] != recF["pid"] || now["status"] != "running" {
			t.Errorf("record after restoring: %v", now)
		}
	}()

	for _, c := range []struct{ why, ref string }{
		{"stopped", stopped},
		{"missing", uniq("missing")},
		{"pid reused", reused},
		{"record forged to a host process", forged},
	} {
		for _, mode := range [][]string{{}, {"-d"}, {"-i"}} {
			t.Run(c.why+strings.Join(mode, ""), func(t *testing.T) {
				f := f.with(t)
				m := marker(t)
				args := append(append([]string{"exec"}, mode...), c.ref, "touch", m)
				if r := f.fails(125, args...); r.stderr == "" {
					t.Errorf("no error message: %s", r)
				}
				if len(mode) > 0 && mode[0] == "-d" {
					time.Sleep(300 * time.Millisecond) // a detached command would have run by now
				}
				for _, layer := range []string{stopped, reused, forged} {
					if _, err := os.Lstat(filepath.Join(f.image, "writeLayer", layer, m)); err == nil {
						t.Errorf("marker created in the layer of %s", layer)
					}
				}
				if _, err := os.Lstat(filepath.Join(fmt.Sprintf("/proc/%d/root", other.Process.Pid), m)); err == nil {
					t.Errorf("marker created in the root of the unrelated process")
				}
			})
		}
	}
	// The unrelated process was left alone.
	if procGone(other.Process.Pid) {
		t.Error("the process that took the PID is gone")
	}
}

// TestExecDetachedFailure: exec -d reports, like exec and like docker, a command that could
// not be started (127 not found, 126 not executable, 125 bad working directory), instead of
// exiting 0 while nothing runs.
func TestExecDetachedFailure(t *testing.T) {
	f := newFK(t)
	name := uniq("exdf")
	f.detach(name, "busybox", "sleep", "1000")
	for _, c := range []struct {
		why  string
		args []string
		code int
	}{
		{"not found", []string{name, "no-such-command"}, 127},
		{"not executable", []string{name, "/etc/passwd"}, 126},
		{"missing working directory", []string{"-w", "/no/such/dir", name, "true"}, 125},
	} {
		t.Run(c.why, func(t *testing.T) {
			f := f.with(t)
			plain := f.run(append([]string{"exec"}, c.args...)...)
			if plain.code != c.code {
				t.Errorf("exec: want exit %d, got %s", c.code, plain)
			}
			if r := f.run(append([]string{"exec", "-d"}, c.args...)...); r.code != c.code {
				t.Errorf("exec -d: want exit %d like exec, got %s", c.code, r)
			}
		})
	}
}

// TestNamedLikeHelp: a container or network called "h" or "help" is an argument like any
// other, not the CLI library's help subcommand: exec, logs, inspect, stop, rm and network
// create/rm reach it.
func TestNamedLikeHelp(t *testing.T) {
	f := newFK(t)
	for i, name := range []string{"h", "help"} {
		rec := f.detach(name, "busybox", "sh", "-c", "echo out; exec sleep 1000")
		if out := f.ok("exec", name, "hostname"); out != name+"\n" {
			t.Errorf("exec %s hostname: %q", name, out)
		}
		if r := f.record(name); r["id"] != rec["id"] {
			t.Errorf("inspect %s: %v", name, r)
		}
		waitFor(t, "the container's output", 10*time.Second, func() bool { return f.ok("logs", name) == "out\n" })
		if out, want := f.ok("stop", "-t", "1", name), fmt.Sprintf("Container: %s, ID: %s, stopped\n", name, rec["id"]); out != want {
			t.Errorf("stop %s printed %q, want %q", name, out, want)
		}
		if out, want := f.ok("rm", name), fmt.Sprintf("Container: %s, ID: %s, removed\n", name, rec["id"]); out != want {
			t.Errorf("rm %s printed %q, want %q", name, out, want)
		}
		if out := f.ok("network", "create", "--subnet", fmt.Sprintf("10.47.%d.0/24", i), name); out != "Network: "+name+", created\n" {
			t.Errorf("network create %s printed %q", name, out)
		}
		if out := f.ok("network", "rm", name); out != "Network: "+name+", removed\n" {
			t.Errorf("network rm %s printed %q", name, out)
		}
	}
}

// fdsOf lists the open descriptors of a process, with what they point to, as the host sees
// them.
func fdsOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		m[e.Name()], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return m
}

// TestStdioAndNoHostFds: a command run by exec without -i has an empty stdin (/dev/null), not
// a closed fd 0 that its first socket or file would take over; and neither a container's
// process nor an exec'd one inherits any other descriptor of the fockker command's caller
// (here a host directory and a host file, open without close-on-exec).
func TestStdioAndNoHostFds(t *testing.T) {
	f := newFK(t)
	name := uniq("fds")
	web := uniq("web")
	ip := f.detach(web, hostnameServer...)["ip"].(string)
	f.detach(name, "busybox", "sleep", "1000")

	if r := f.run("exec", name, "cat"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("exec cat without -i: want empty stdin, got %s", r)
	}
	if r := f.run("exec", name, "sh", "-c", `read x; echo "read=$?"; [ -c /proc/self/fd/0 ] && echo fd0-chardev`); r.stdout != "read=1\nfd0-chardev\n" {
		t.Errorf("stdin of exec without -i: %s", r)
	}
	// With fd 0 closed, nc's socket became its "stdin" and the answer went back to the server.
	waitAnswer(t, f.netns, ip, 80, web+"\n")
	if r := f.run("exec", name, "nc", ip, "80"); r.stdout != web+"\n" {
		t.Errorf("exec nc: want %q, got %s", web+"\n", r)
	}

	hostDir, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer hostDir.Close()
	hostFile, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer hostFile.Close()
	start := func(args ...string) {
		t.Helper()
		cmd := f.nsCommand(args...)
		// Inheritable fds 20 and 21: above the fds fockker passes to its own children, which
		// would replace (and hide) low ones.
		cmd.ExtraFiles = append(make([]*os.File, 17), hostDir, hostFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v: %s", args, err, out)
		}
	}
	check := func(what string, pid int) {
		t.Helper()
		fds := fdsOf(t, pid)
		for fd, target := range fds {
			if fd != "0" && fd != "1" && fd != "2" {
				t.Errorf("%s has fd %s -> %s from the host", what, fd, target)
			}
		}
	}
	leaky := uniq("leaky")
	start("run", "-d", "--name", leaky, "busybox", "sleep", "1000")
	rec := f.record(leaky)
	check("container init (run -d)", num(t, rec, "pid"))
	start("exec", "-d", leaky, "sleep", "778")
	var pid int
	waitFor(t, "the exec'd sleep", 10*time.Second, func() bool {
		pid = findInContainer(num(t, rec, "pid"), "sleep", "778")
		return pid != 0
	})
	check("exec -d process", pid)
}
