package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startAttached starts an attached `run` in the background and waits until the container
// printed its first line; it returns the command and the container's record.
func startAttached(t *testing.T, f *fk, name string, args ...string) (*exec.Cmd, map[string]any) {
	t.Helper()
	cmd := f.nsCommand(append([]string{"run", "--name", name}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		line <- sc.Text()
		for sc.Scan() {
		}
	}()
	select {
	case l := <-line:
		if l != "ready" {
			t.Fatalf("container printed %q, want ready", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("attached container never printed ready")
	}
	return cmd, f.record(name)
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("fockker did not exit")
		return -1
	}
}

// TestAttachedSignals checks that signals sent to an attached fockker reach the container,
// and that killing fockker itself takes the container with it (no orphan, ps reconciles).
func TestAttachedSignals(t *testing.T) {
	f := newFK(t)

	t.Run("TERM is forwarded", func(t *testing.T) {
		f := f.with(t)
		name := uniq("sigfwd")
		cmd, _ := startAttached(t, f, name, "busybox", "sh", "-c", `trap "exit 9" TERM; echo ready; while true; do sleep 0.1; done`)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd); code != 9 {
			t.Errorf("fockker exited %d, want the container's 9", code)
		}
		if rec := f.record(name); rec["status"] != "stopped" || num(t, rec, "exitCode") != 9 {
			t.Errorf("record: %v %v", rec["status"], rec["exitCode"])
		}
	})

	t.Run("INT is forwarded", func(t *testing.T) {
		f := f.with(t)
		name := uniq("sigint")
		cmd, _ := startAttached(t, f, name, "busybox", "sh", "-c", `trap "exit 2" INT; echo ready; while true; do sleep 0.1; done`)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd); code != 2 {
			t.Errorf("fockker exited %d, want 2", code)
		}
	})

	// The container dies with its fockker, also with a user of its own: the kernel clears the
	// parent-death signal when the ids change, and the init sets it again after.
	for _, user := range []string{"", "1000:1000"} {
		t.Run("fockker killed, user "+user, func(t *testing.T) {
			f := f.with(t)
			name := uniq("orphan")
			args := []string{"busybox", "sh", "-c", `echo ready; sleep 100`}
			if user != "" {
				args = append([]string{"-u", user}, args...)
			}
			cmd, rec := startAttached(t, f, name, args...)
			pid := num(t, rec, "pid")
			if uid := procStatus(pid)["Uid"]; user != "" && !strings.HasPrefix(uid, "1000") {
				t.Fatalf("the container runs as uid %q, want 1000", uid)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			exitCode(t, cmd)
			waitFor(t, "the container to die with its parent", 5*time.Second, func() bool { return procGone(pid) })
			waitFor(t, "ps to say stopped", 5*time.Second, func() bool { return f.record(name)["status"] == "stopped" })
			f.ok("rm", name)
			assertCgroupGone(t, name)
		})
	}
}

// TestDetachedSurvivesHangup starts run -d from a terminal and then hangs the terminal up:
// the container and its watcher, in a session of their own, keep running.
func TestDetachedSurvivesHangup(t *testing.T) {
	f := newFK(t)
	name := uniq("hup")
	tm := startOnTerm(t, f, 24, 80, "run", "-d", "--name", name, "busybox", "sleep", "100")
	if code := tm.wait(20 * time.Second); code != 0 {
		t.Fatalf("run -d on a terminal: exit %d:\n%q", code, tm.output())
	}
	rec := f.record(name)
	tm.tty.Close()
	tm.ptmx.Close() // hang up
	time.Sleep(200 * time.Millisecond)
	if procGone(num(t, rec, "pid")) || procGone(num(t, rec, "watcherPid")) {
		t.Fatalf("the container or its watcher died with the terminal")
	}
	if st := f.record(name)["status"]; st != "running" {
		t.Errorf("status %v after hangup", st)
	}
}

// TestEnvFile checks --env-file (comments, blank lines, values with spaces), -e overriding
// it, and -e KEY passing the caller's value.
func TestEnvFile(t *testing.T) {
	f := newFK(t)
	file := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(file, []byte("# a comment\nA=1\n\nB=two words\nC=from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = []string{"FROM_CALLER=passed"}
	out := f.ok("run", "--rm", "--env-file", file, "-e", "C=from-flag", "-e", "FROM_CALLER", "-e", "UNSET_IN_CALLER",
		"busybox", "sh", "-c", `echo "$A|$B|$C|$FROM_CALLER|${UNSET_IN_CALLER-unset}"`)
	if out != "1|two words|from-flag|passed|unset\n" {
		t.Errorf("got %q", out)
	}
	if strings.Contains(f.ok("run", "--rm", "busybox", "env"), "FROM_CALLER") {
		t.Errorf("the caller's variable leaked without -e")
	}
}

// TestAttachedInitParent: the container's init is the CLI's own child, and its only one once
// the command runs (nothing else the CLI started, such as a helper, is left, not even a zombie).
func TestAttachedInitParent(t *testing.T) {
	f := newFK(t)
	name := uniq("parent")
	cmd, rec := startAttached(t, f, name, "busybox", "sh", "-c", `echo ready; sleep 100`)
	pid := num(t, rec, "pid")
	cli := cmd.Process.Pid // nsenter execs fockker: the same process
	if pp := procStatus(pid)["PPid"]; pp != strconv.Itoa(cli) {
		t.Errorf("the init's parent is %s, want the CLI %d", pp, cli)
	}
	var children []string
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cli))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, strings.Fields(string(b))...)
	}
	if len(children) != 1 || children[0] != strconv.Itoa(pid) {
		t.Errorf("the CLI's children are %v, want only the init %d", children, pid)
	}
	f.ok("rm", "-f", name)
	exitCode(t, cmd)
}
