//go:build linux && cgo

package nsenter

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// targetComm is the command name the target's init gives itself, so that
// every test also runs the C stat parser on a name with spaces and parens.
const targetComm = "x) (y z"

// defaultScript is what the target's init runs after the setup of startTarget.
const defaultScript = `echo ready; while :; do /bin/busybox sleep 3600; done`

// target is a process standing in for a container's init: PID 1 of fresh
// pid, mount, uts, ipc and net namespaces.
type target struct {
	pid   int    // as seen from here
	start uint64 // StartTime(pid)
	// mnt is a directory with a tmpfs mounted on it inside the target's mount
	// namespace only, holding a file "where" that says "inside".
	mnt string
}

type targetOpts struct {
	cgroupDir string   // joined before unsharing, if set
	unshare   []string // more unshare flags
	script    string   // replaces defaultScript
}

// startTarget starts a target and kills it (and so its namespaces) in
// t.Cleanup. It returns once the target's init has set itself up.
func startTarget(t *testing.T, opts targetOpts) target {
	t.Helper()
	requireRoot(t)
	requireBusybox(t)
	unshare, err := exec.LookPath("unshare") // util-linux, not busybox's applet
	if err != nil {
		t.Skipf("needs unshare(1): %v", err)
	}
	mnt := t.TempDir()
	script := opts.script
	if script == "" {
		script = defaultScript
	}
	setup := fmt.Sprintf(`set -e
/bin/busybox hostname ctr
/bin/busybox mount -t tmpfs fockker-nsenter-test %q
echo inside > %q
printf %%s %q > /proc/self/comm
%s`, mnt, filepath.Join(mnt, "where"), targetComm, script)
	args := []string{unshare, "--pid", "--mount", "--uts", "--ipc", "--net", "--fork", "--mount-proc"}
	args = append(args, opts.unshare...)
	args = append(args, busybox, "sh", "-c", setup)
	if opts.cgroupDir != "" {
		// Join the cgroup first, so that a new cgroup namespace is rooted there.
		args = append([]string{busybox, "sh", "-c", `echo $$ > "$0" && exec "$@"`,
			filepath.Join(opts.cgroupDir, "cgroup.procs")}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidfd := -1
	t.Cleanup(func() {
		// Through a pidfd: the target may be dead and its number reused.
		if pidfd >= 0 {
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			unix.Close(pidfd)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("target did not start: %q, %v; stderr: %s", line, err, stderr.String())
	}
	tg := target{pid: childOf(t, cmd.Process.Pid), mnt: mnt}
	if pidfd, err = unix.PidfdOpen(tg.pid, 0); err != nil {
		t.Fatal(err)
	}
	if tg.start, err = StartTime(tg.pid); err != nil {
		t.Fatal(err)
	}
	if childOf(t, cmd.Process.Pid) != tg.pid {
		t.Fatal("target changed while opening it")
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tg.pid)); opts.script == "" && string(comm) != targetComm+"\n" {
		t.Fatalf("target comm %q, want %q", comm, targetComm)
	}
	return tg
}

// childOf returns the only child of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var children []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			children = append(children, n)
		}
	}
	if len(children) != 1 {
		t.Fatalf("pid %d has children %v, want exactly one", pid, children)
	}
	return children[0]
}

// config returns a config joining all of tg's namespaces.
func (tg target) config(args ...string) *Config {
	return &Config{
		Pid:        tg.pid,
		StartTime:  tg.start,
		Namespaces: []string{NSMount, NSUTS, NSIPC, NSNet, NSPID},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Args:       args,
	}
}

// expectOK checks the command succeeded and returns its stdout.
func expectOK(t *testing.T, res result) string {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("exit code %d; stdout %q; stderr %q", res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

func TestJoinNamespaces(t *testing.T) {
	tg := startTarget(t, targetOpts{})

	t.Run("hostname", func(t *testing.T) {
		if out := expectOK(t, runConfig(t, tg.config(busybox, "hostname"))); out != "ctr\n" {
			t.Fatalf("hostname %q, want ctr", out)
		}
	})

	t.Run("namespace links", func(t *testing.T) {
		names := []string{"mnt", "uts", "ipc", "net", "pid"}
		out := expectOK(t, runConfig(t, tg.config(busybox, "sh", "-c",
			`for n in mnt uts ipc net pid; do /bin/busybox readlink /proc/self/ns/$n; done`)))
		var want []string
		for _, n := range names {
			theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", tg.pid, n))
			if err != nil {
				t.Fatal(err)
			}
			ours, err := os.Readlink("/proc/self/ns/" + n)
			if err != nil {
				t.Fatal(err)
			}
			if theirs == ours {
				t.Fatalf("target shares our %s namespace; the test setup is broken", n)
			}
			want = append(want, theirs)
		}
		if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("command is in %v, target in %v", got, want)
		}
	})

	t.Run("only the container's processes", func(t *testing.T) {
		out := expectOK(t, runConfig(t, tg.config(busybox, "ps", "-o", "pid,comm")))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 {
			t.Fatalf("ps output too short: %q", out)
		}
		seen := map[string]string{}
		for _, l := range lines[1:] {
			pid, comm, _ := strings.Cut(strings.TrimSpace(l), " ")
			seen[pid] = strings.TrimSpace(comm)
		}
		if seen["1"] != targetComm {
			t.Fatalf("PID 1 is %q, want the target %q; ps: %q", seen["1"], targetComm, out)
		}
		// The target's shell, its sleep and ps itself; both run as /bin/busybox.
		for pid, comm := range seen {
			if comm != targetComm && comm != "busybox" {
				t.Fatalf("foreign process %s %q visible; ps: %q", pid, comm, out)
			}
		}
		if len(seen) != 3 {
			t.Fatalf("%d processes visible, want 3; ps: %q", len(seen), out)
		}
	})

	t.Run("network", func(t *testing.T) {
		out := expectOK(t, runConfig(t, tg.config(busybox, "ip", "-o", "link")))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], ": lo:") {
			t.Fatalf("links %q, want only lo", out)
		}
		ifaces, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, ifc := range ifaces {
			if ifc.Name != "lo" && strings.Contains(out, ": "+ifc.Name+":") {
				t.Fatalf("host link %s visible: %q", ifc.Name, out)
			}
		}
	})

	t.Run("mounts", func(t *testing.T) {
		where := filepath.Join(tg.mnt, "where")
		if _, err := os.Stat(where); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the target's tmpfs is visible on the host (%v); setup broken", err)
		}
		if out := expectOK(t, runConfig(t, tg.config(busybox, "cat", where))); out != "inside\n" {
			t.Fatalf("read %q, want the file from the target's mount namespace", out)
		}
	})

	t.Run("stdio streams through", func(t *testing.T) {
		cmd, err := Command(testBinary(t), tg.config(busybox, "sh", "-c", "cat; echo err >&2"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader("from stdin\n")
		res := run(t, cmd)
		if expectOK(t, res) != "from stdin\n" || res.stderr != "err\n" {
			t.Fatalf("stdout %q, stderr %q", res.stdout, res.stderr)
		}
	})

	t.Run("only stdio fds", func(t *testing.T) {
		cmd, err := Command(testBinary(t), tg.config(busybox, "ls", "/proc/self/fd"))
		if err != nil {
			t.Fatal(err)
		}
		extra, err := os.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, extra) // fd 4 in the nsenter process
		// ls lists its own directory fd as 3; nothing else may be there.
		if out := expectOK(t, run(t, cmd)); strings.Join(strings.Fields(out), " ") != "0 1 2 3" {
			t.Fatalf("fds %q, want only 0 1 2 (and ls's own 3)", out)
		}
	})
}

// TestFollowsTargetRoot: a target that chroot'ed (instead of pivot_root)
// still has the command run in its root, not in the mount namespace's.
func TestFollowsTargetRoot(t *testing.T) {
	requireRoot(t)
	requireBusybox(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in-chroot"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tg := startTarget(t, targetOpts{script: fmt.Sprintf(
		`exec /bin/busybox chroot %q /bin/busybox sh -c 'echo ready; while :; do /bin/busybox sleep 3600; done'`,
		root)})
	out := expectOK(t, runConfig(t, tg.config("/bin/busybox", "ls", "/")))
	if strings.Join(strings.Fields(out), " ") != "bin in-chroot" {
		t.Fatalf("ls / = %q, want the target's chroot", out)
	}
}

func TestEnvironment(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	t.Setenv("FOCKKER_NSENTER_TEST_HOST_SECRET", "must-not-leak")
	c := tg.config(busybox, "env")
	c.Env = []string{"A=1", "B=with  two spaces", "C=quote\"'$x", "PATH=/bin"}
	out := expectOK(t, runConfig(t, c))
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "|") != strings.Join(c.Env, "|") {
		t.Fatalf("env %q, want exactly %q", got, c.Env)
	}

	c.Env = nil
	if out := expectOK(t, runConfig(t, c)); out != "" {
		t.Fatalf("env %q, want empty", out)
	}
}

func TestArgv(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	out := expectOK(t, runConfig(t, tg.config(busybox, "sh", "-c", `printf "%s|" "$@"`, "x",
		"a  b", "c'd", `e"f`, "$HOME", "*", "", "g\nh")))
	if want := "a  b|c'd|e\"f|$HOME|*||g\nh|"; out != want {
		t.Fatalf("args arrived as %q, want %q", out, want)
	}
}

func TestExitCodes(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m := filepath.Join(dir, "MARKER")
	plain := write("plain", "#!/bin/busybox sh\ntouch "+m+"\n", 0o644)
	noShebang := write("noshebang", "/bin/busybox touch "+m+"\n", 0o755)
	write("bin1/tool", "#!/bin/busybox sh\necho from-bin1\n", 0o644) // not executable
	write("bin2/tool", "#!/bin/busybox sh\necho from-bin2\n", 0o755)
	write("bin2/hello", "#!/bin/busybox sh\necho hello from PATH\n", 0o755)
	write("bin3/noshebang", "/bin/busybox touch "+m+"\n", 0o755)

	for _, tc := range []struct {
		name   string
		path   string // PATH for the command; "" means none
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"exit status", "/bin", []string{busybox, "sh", "-c", "exit 3"}, 3, "", ""},
		{"exit 255", "/bin", []string{busybox, "sh", "-c", "exit 255"}, 255, "", ""},
		{"killed by SIGKILL", "/bin", []string{busybox, "sh", "-c", "kill -KILL $$"}, 128 + 9, "", ""},
		{"killed by SIGSEGV", "/bin", []string{busybox, "sh", "-c", "kill -SEGV $$"}, 128 + 11, "", ""},
		{"not in PATH", "/bin", []string{"no-such-command-fockker"}, 127, "", "no-such-command-fockker: executable file not found in $PATH"},
		{"missing path", "/bin", []string{"/no/such/command"}, 127, "", "/no/such/command: no such file or directory"},
		{"not executable", "/bin", []string{plain}, 126, "", "permission denied"},
		{"directory", "/bin", []string{dir}, 126, "", "permission denied"},
		{"no shebang is not run by a shell", "/bin", []string{noShebang}, 126, "", "exec format error"},
		{"host PATH not used", "/nonexistent", []string{"busybox", "true"}, 127, "", "not found in $PATH"},
		{"empty PATH", "", []string{"busybox", "true"}, 0, "", ""}, // default PATH has /bin
		{"PATH from the config", filepath.Join(dir, "bin2"), []string{"hello"}, 0, "hello from PATH\n", ""},
		{"PATH skips non-executable", filepath.Join(dir, "bin1") + "::" + filepath.Join(dir, "bin2"), []string{"tool"}, 0, "from-bin2\n", ""},
		{"PATH finds no-shebang file", filepath.Join(dir, "bin3") + ":" + filepath.Join(dir, "bin2"), []string{"noshebang"}, 126, "", "bin3/noshebang: exec format error"},
		{"PATH finds only non-executable", filepath.Join(dir, "bin1"), []string{"tool"}, 126, "", "tool: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tg.config(tc.args...)
			c.Env = nil
			if tc.path != "" {
				c.Env = []string{"PATH=" + tc.path}
			}
			res := runConfig(t, c)
			if res.code != tc.code || res.stdout != tc.stdout || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("got %d %q %q; want %d %q, stderr with %q", res.code, res.stdout, res.stderr,
					tc.code, tc.stdout, tc.stderr)
			}
			requireNoMarker(t, m)
		})
	}
}

func TestWorkingDir(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	spaced := filepath.Join(t.TempDir(), "a b")
	if err := os.Mkdir(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	for cwd, want := range map[string]string{"": "/", "/tmp": "/tmp", spaced: spaced, tg.mnt: tg.mnt} {
		c := tg.config(busybox, "pwd")
		c.Cwd = cwd
		if out := expectOK(t, runConfig(t, c)); out != want+"\n" {
			t.Errorf("Cwd %q: pwd %q, want %q", cwd, out, want)
		}
	}
	m := marker(t)
	c := tg.config(touchArgs(m)...)
	c.Cwd = "/no/such/dir"
	expectSetupFailure(t, runConfig(t, c), "working directory /no/such/dir: No such file or directory", m)
}

// TestRefusesStaleTarget: whatever is wrong with the target, exit 125 and
// the command runs nowhere.
func TestRefusesStaleTarget(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	m := marker(t)

	t.Run("wrong start time", func(t *testing.T) {
		for _, st := range []uint64{tg.start + 1, tg.start - 1, 1} {
			c := tg.config(touchArgs(m)...)
			c.StartTime = st
			expectSetupFailure(t, runConfig(t, c), "it is not the container's process", m)
		}
	})

	t.Run("dead process", func(t *testing.T) {
		dead := startTarget(t, targetOpts{})
		if err := syscall.Kill(dead.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Its parent (unshare) reaps it; wait until /proc/PID is gone.
		deadline := time.Now().Add(waitLimit)
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", dead.pid)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("killed target does not go away")
			}
			time.Sleep(10 * time.Millisecond)
		}
		res := runConfig(t, dead.config(touchArgs(m)...))
		if res.code != ExitSetup || !strings.Contains(res.stderr, fmt.Sprintf("process %d", dead.pid)) {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
		requireNoMarker(t, m)
	})

	t.Run("host process", func(t *testing.T) {
		c := tg.config(touchArgs(m)...)
		c.Pid = os.Getpid()
		st, err := StartTime(c.Pid)
		if err != nil {
			t.Fatal(err)
		}
		c.StartTime = st
		expectSetupFailure(t, runConfig(t, c), "refusing to run outside a container", m)
	})

	t.Run("host process sharing only the mount namespace", func(t *testing.T) {
		c := tg.config(touchArgs(m)...)
		c.Namespaces = []string{NSMount}
		c.Pid = os.Getpid()
		c.StartTime, _ = StartTime(c.Pid)
		expectSetupFailure(t, runConfig(t, c), "shares our mnt namespace", m)
	})
}

// makeCgroup creates a throwaway v1 pids cgroup and removes it in t.Cleanup
// (registered first, so it runs after the processes in it are gone).
func makeCgroup(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	const base = "/sys/fs/cgroup/pids"
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
		t.Skipf("needs a cgroup v1 pids hierarchy at %s", base)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "fockker-nsenter-test-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir
}

// pidsCgroup returns the pids line of a /proc/PID/cgroup text.
func pidsCgroup(t *testing.T, text string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && parts[1] == "pids" {
			return parts[2]
		}
	}
	t.Fatalf("no pids line in %q", text)
	return ""
}

func TestCgroups(t *testing.T) {
	requireRoot(t)
	m := marker(t)

	t.Run("join", func(t *testing.T) {
		dir := makeCgroup(t)
		tg := startTarget(t, targetOpts{})
		c := tg.config(busybox, "cat", "/proc/self/cgroup")
		c.CgroupDirs = []string{dir}
		out := expectOK(t, runConfig(t, c))
		if got, want := pidsCgroup(t, out), "/"+filepath.Base(dir); got != want {
			t.Fatalf("command in pids cgroup %q, want %q", got, want)
		}
	})

	t.Run("join with cgroup namespace", func(t *testing.T) {
		dir := makeCgroup(t)
		tg := startTarget(t, targetOpts{cgroupDir: dir, unshare: []string{"--cgroup"}})
		c := tg.config(busybox, "cat", "/proc/self/cgroup")
		c.CgroupDirs = []string{dir}
		c.Namespaces = append(c.Namespaces, NSCgroup)
		out := expectOK(t, runConfig(t, c))
		// The target's cgroup namespace is rooted at dir: inside it, dir is "/".
		if got := pidsCgroup(t, out); got != "/" {
			t.Fatalf("command sees pids cgroup %q, want / (the namespace root)", got)
		}
		self, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		if pidsCgroup(t, string(self)) == "/"+filepath.Base(dir) {
			t.Fatal("test setup broken: we are in the test cgroup ourselves")
		}
	})

	t.Run("not a cgroup", func(t *testing.T) {
		tg := startTarget(t, targetOpts{})
		fake := t.TempDir()
		if err := os.WriteFile(filepath.Join(fake, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		c := tg.config(touchArgs(m)...)
		c.CgroupDirs = []string{fake}
		expectSetupFailure(t, runConfig(t, c), "is not on a cgroup filesystem", m)
		if data, _ := os.ReadFile(filepath.Join(fake, "cgroup.procs")); len(data) != 0 {
			t.Fatalf("wrote %q into a file that is not a cgroup", data)
		}
	})

	t.Run("missing cgroup", func(t *testing.T) {
		tg := startTarget(t, targetOpts{})
		c := tg.config(touchArgs(m)...)
		c.CgroupDirs = []string{"/sys/fs/cgroup/pids/fockker-nsenter-test-missing"}
		expectSetupFailure(t, runConfig(t, c), "No such file or directory", m)
	})
}

func TestTTY(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	open := func(t *testing.T, c *Config) (*exec.Cmd, *os.File, *watcher) {
		t.Helper()
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ptmx.Close() })
		c.Tty = true
		cmd, err := Command(testBinary(t), c)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		start(t, cmd)
		tty.Close()
		return cmd, ptmx, watch(ptmx)
	}

	t.Run("controlling terminal", func(t *testing.T) {
		// Writing /dev/tty works only for a process with a controlling terminal.
		cmd, ptmx, out := open(t, tg.config(busybox, "sh", "-c",
			`[ -t 0 ] && echo ctty-ok > /dev/tty && read l && echo "got:$l" && exit 4`))
		out.waitFor(t, "ctty-ok")
		if _, err := ptmx.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		if code := wait(t, cmd); code != 4 {
			t.Fatalf("exit %d, want 4; output %q", code, out.String())
		}
		out.waitFor(t, "got:hello")
	})

	t.Run("interrupt from the terminal", func(t *testing.T) {
		cmd, ptmx, out := open(t, tg.config(busybox, "sh", "-c", `echo ready; exec /bin/busybox sleep 3600`))
		out.waitFor(t, "ready")
		if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C
			t.Fatal(err)
		}
		if code := wait(t, cmd); code != 128+int(syscall.SIGINT) {
			t.Fatalf("exit %d, want 130; output %q", code, out.String())
		}
	})
}

func TestSignals(t *testing.T) {
	tg := startTarget(t, targetOpts{})

	t.Run("SIGTERM is relayed", func(t *testing.T) {
		cmd, err := Command(testBinary(t), tg.config(busybox, "sh", "-c",
			`echo ready; while :; do /bin/busybox sleep 1; done`))
		if err != nil {
			t.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd.Stdout = w
		start(t, cmd)
		w.Close()
		out := watch(r)
		out.waitFor(t, "ready")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := wait(t, cmd); code != 128+int(syscall.SIGTERM) {
			t.Fatalf("exit %d, want 143", code)
		}
	})

	// Without a tty, the kernel sends ^C to the whole foreground process group;
	// the nsenter process must not relay it a second time. The command leaves
	// the group (setsid) so that only a relayed SIGINT could reach it; bytes
	// after ^C are read only once the kernel has sent the signal, and a
	// relayed SIGINT would be relayed before the later SIGUSR1 (signalfd
	// returns lower signal numbers first).
	t.Run("terminal signals are not relayed twice", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		termios, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		termios.Lflag |= unix.NOFLSH // ^C must not discard the line typed after it
		if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, termios); err != nil {
			t.Fatal(err)
		}
		cmd, err := Command(testBinary(t), tg.config(busybox, "setsid", busybox, "sh", "-c", `
trap 'echo got-INT' INT
trap 'echo got-USR1; exit 0' USR1
echo ready
read l
echo "line:$l"
while :; do /bin/busybox sleep 1 & wait $!; done`))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		start(t, cmd)
		tty.Close()
		out := watch(ptmx)
		out.waitFor(t, "ready")
		if _, err := ptmx.Write([]byte("\x03go\n")); err != nil {
			t.Fatal(err)
		}
		out.waitFor(t, "line:go")
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		code := wait(t, cmd)
		out.waitFor(t, "got-USR1")
		if code != 0 || strings.Contains(out.String(), "got-INT") {
			t.Fatalf("exit %d, output %q: SIGINT was relayed", code, out.String())
		}
	})
}

// TestNoMountsLeft runs last in this file's order and checks that none of
// the targets' mounts leaked into the host's mount table.
func TestNoMountsLeft(t *testing.T) {
	requireRoot(t)
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "fockker-nsenter-test") {
			found = append(found, l)
		}
	}
	sort.Strings(found)
	if len(found) > 0 {
		t.Fatalf("mounts left on the host: %q", found)
	}
}

// denyMkdir is a seccomp filter that fails mkdir and mkdirat with EACCES and
// allows everything else (enough for a test; it does not check the arch).
func denyMkdir() []unix.SockFilter {
	nrs := []uint32{unix.SYS_MKDIRAT}
	if runtime.GOARCH == "amd64" {
		nrs = append(nrs, 83) // mkdir
	}
	return denyCalls(unix.EACCES, nrs...)
}

// denyCalls fails the given syscall numbers with errno and allows the rest.
func denyCalls(errno unix.Errno, nrs ...uint32) []unix.SockFilter {
	f := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}}
	for _, nr := range nrs {
		// if nr matches, fall through to the return of errno, else skip it
		f = append(f,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: nr},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)})
	}
	return append(f, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW})
}

// statusOf parses /proc/PID/status output into its fields.
func statusOf(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// TestRestrictions: the command runs with the configured user, groups,
// capabilities, no_new_privs and seccomp filter, as the kernel reports them.
func TestRestrictions(t *testing.T) {
	tg := startTarget(t, targetOpts{})
	// World-writable, and not under t.TempDir() (private to root), so that a
	// user could create the directory below unless the filter stops it.
	dir, err := os.MkdirTemp("", "fockker-nsenter-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	probe := fmt.Sprintf(`/bin/busybox cat /proc/self/status; /bin/busybox mkdir %s/sub 2>&1; echo mkdir=$?`, dir)
	const defaultCaps = 0xa80425fb
	check := func(t *testing.T, out string, want map[string]string) {
		t.Helper()
		st := statusOf(out)
		for k, v := range want {
			if st[k] != v {
				t.Errorf("%s: %q, want %q", k, st[k], v)
			}
		}
	}

	t.Run("user with no_new_privs", func(t *testing.T) {
		c := tg.config(busybox, "sh", "-c", probe)
		c.Creds = &Creds{UID: 1000, GID: 1001, Groups: []uint32{1001, 10}}
		c.Caps = &Caps{Bounding: defaultCaps}
		c.NoNewPrivs = true
		c.Seccomp = &Seccomp{Instructions: denyMkdir()}
		out := expectOK(t, runConfig(t, c))
		check(t, out, map[string]string{
			"Uid": "1000 1000 1000 1000", "Gid": "1001 1001 1001 1001", "Groups": "10 1001",
			"CapBnd": "00000000a80425fb", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
			"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
		})
		if !strings.Contains(out, "Permission denied") || !strings.Contains(out, "mkdir=1") {
			t.Errorf("mkdir was not refused by the filter: %q", out)
		}
	})

	t.Run("root keeps its capabilities, filter without no_new_privs", func(t *testing.T) {
		c := tg.config(busybox, "sh", "-c", probe)
		c.Creds = &Creds{}
		c.Caps = &Caps{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps}
		c.Seccomp = &Seccomp{Instructions: denyMkdir()}
		out := expectOK(t, runConfig(t, c))
		check(t, out, map[string]string{
			"Uid": "0 0 0 0", "Groups": "", "CapBnd": "00000000a80425fb", "CapEff": "00000000a80425fb",
			"CapPrm": "00000000a80425fb", "NoNewPrivs": "0", "Seccomp": "2",
		})
		if !strings.Contains(out, "mkdir=1") {
			t.Errorf("mkdir was not refused by the filter: %q", out)
		}
	})

	t.Run("ambient capabilities survive the user change", func(t *testing.T) {
		c := tg.config(busybox, "cat", "/proc/self/status")
		const netBind = 1 << unix.CAP_NET_BIND_SERVICE
		c.Creds = &Creds{UID: 1000, GID: 1000}
		c.Caps = &Caps{Bounding: defaultCaps, Effective: netBind, Permitted: netBind, Inheritable: netBind, Ambient: netBind}
		check(t, expectOK(t, runConfig(t, c)), map[string]string{
			"Uid": "1000 1000 1000 1000", "CapAmb": "0000000000000400", "CapEff": "0000000000000400",
		})
	})

	t.Run("without restrictions the command keeps ours", func(t *testing.T) {
		own := statusOf(readFile(t, "/proc/self/status"))
		out := expectOK(t, runConfig(t, tg.config(busybox, "cat", "/proc/self/status")))
		check(t, out, map[string]string{"CapEff": own["CapEff"], "CapBnd": own["CapBnd"], "Seccomp": "0", "Uid": "0 0 0 0"})
	})

	t.Run("a filter that refuses the user change stops the command", func(t *testing.T) {
		m := filepath.Join(dir, "MARKER")
		c := tg.config(touchArgs(m)...)
		c.Creds = &Creds{UID: 1000, GID: 1000}
		c.Caps = &Caps{Bounding: defaultCaps}
		c.Seccomp = &Seccomp{Instructions: denyCalls(unix.EPERM, unix.SYS_SETRESUID)}
		expectSetupFailure(t, runConfig(t, c), "setresuid 1000: Operation not permitted", m)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
