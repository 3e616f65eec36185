package tests

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// term is a pseudo-terminal the test owns, with fockker running on its slave side as the
// session leader, like a user's shell would start it.
type term struct {
	t          *testing.T
	ptmx, tty  *os.File
	cmd        *exec.Cmd
	mu         sync.Mutex
	out        strings.Builder
	readerDone chan struct{}
	before     *unix.Termios
}

func startOnTerm(t *testing.T, f *fk, rows, cols uint16, args ...string) *term {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, ptmx: ptmx, tty: tty, readerDone: make(chan struct{}), before: before}
	tm.cmd = f.nsCommand(args...)
	tm.cmd.Stdin, tm.cmd.Stdout, tm.cmd.Stderr = tty, tty, tty
	tm.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := tm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tm.readerDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if tm.cmd.ProcessState == nil {
			tm.cmd.Process.Kill()
			tm.cmd.Wait()
		}
		tty.Close()
		ptmx.Close()
		<-tm.readerDone
	})
	return tm
}

func (tm *term) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// expect waits until the output after offset matches re and returns the new offset.
func (tm *term) expect(from int, re string, timeout time.Duration) int {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		out := tm.output()
		if loc := rx.FindStringIndex(out[from:]); loc != nil {
			return from + loc[1]
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("terminal never showed %q; got after offset %d:\n%q", re, from, out[from:])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if _, err := tm.ptmx.Write([]byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

// wait waits for fockker to exit and returns its exit code.
func (tm *term) wait(timeout time.Duration) int {
	tm.t.Helper()
	done := make(chan error, 1)
	go func() { done <- tm.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			tm.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		tm.cmd.Process.Kill()
		<-done
		tm.t.Fatalf("fockker did not exit; terminal:\n%q", tm.output())
		return -1
	}
}

// assertRestored checks that the test's terminal is back in the mode it was before fockker
// put it in raw mode.
func (tm *term) assertRestored() {
	tm.t.Helper()
	after, err := unix.IoctlGetTermios(int(tm.tty.Fd()), unix.TCGETS)
	if err != nil {
		tm.t.Fatal(err)
	}
	if after.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
		tm.t.Errorf("terminal left raw: lflag %#x", after.Lflag)
	}
	if after.Lflag != tm.before.Lflag || after.Iflag != tm.before.Iflag || after.Oflag != tm.before.Oflag || after.Cflag != tm.before.Cflag {
		tm.t.Errorf("terminal modes not restored: before %+v after %+v", *tm.before, *after)
	}
}

// childOf returns the PIDs of pid's children.
func childrenOf(pid int) []int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	var out []int
	for _, s := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// TestInteractiveTerminal drives `run -it` through a pty: prompt, arithmetic, tty, window
// size and its changes, Ctrl-C reaching the container, the exit code, the terminal restored.
func TestInteractiveTerminal(t *testing.T) {
	f := newFK(t)
	name := uniq("tty")
	tm := startOnTerm(t, f, 37, 91, "run", "-it", "--name", name, "busybox", "sh")
	at := tm.expect(0, `# (\x1b\[6n)?$`, 10*time.Second) // busybox sh's root prompt (and its cursor query)

	tm.send("echo $((6*7))\r")
	at = tm.expect(at, `\r\n42\r\n`, 5*time.Second)

	tm.send("tty; echo TERM=$TERM\r")
	at = tm.expect(at, `\r\n/dev/(console|pts/\d+)\r\nTERM=xterm\r\n`, 5*time.Second)

	tm.send("stty size\r")
	at = tm.expect(at, `\r\n37 91\r\n`, 5*time.Second)

	// A resize of the user's terminal reaches the container (SIGWINCH is forwarded).
	if err := pty.Setsize(tm.ptmx, &pty.Winsize{Rows: 50, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	resized := false
	for i := 0; i < 50 && !resized; i++ {
		tm.send("stty size\r")
		at = tm.expect(at, `\r\n\d+ \d+\r\n`, 5*time.Second)
		resized = strings.HasSuffix(tm.output()[:at], "\r\n50 120\r\n")
		if !resized {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !resized {
		t.Errorf("window size change never reached the container")
	}

	// Ctrl-C interrupts the container's foreground job, not fockker.
	pid := num(t, f.record(name), "pid")
	tm.send("sleep 100\r")
	var sleepPid int
	waitFor(t, "sleep to start in the container", 5*time.Second, func() bool {
		for _, c := range childrenOf(pid) {
			if st := procStatus(c); st != nil && st["Name"] == "sleep" {
				sleepPid = c
				return true
			}
		}
		return false
	})
	tm.send("\x03")
	waitFor(t, "Ctrl-C to kill sleep", 5*time.Second, func() bool { return procGone(sleepPid) })
	tm.send("echo alive-$((1+1))\r")
	at = tm.expect(at, `\r\nalive-2\r\n`, 5*time.Second)
	if tm.cmd.ProcessState != nil || procGone(tm.cmd.Process.Pid) {
		t.Fatalf("Ctrl-C killed fockker")
	}

	tm.send("exit 3\r")
	if code := tm.wait(10 * time.Second); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	tm.assertRestored()
	rec := f.record(name)
	if rec["status"] != "stopped" || num(t, rec, "exitCode") != 3 {
		t.Errorf("record: %v %v", rec["status"], rec["exitCode"])
	}
	f.ok("rm", name)
	assertCgroupGone(t, name)
}

// TestInteractiveTerminalKilled checks that the terminal is restored when the container is
// killed from outside while attached.
func TestInteractiveTerminalKilled(t *testing.T) {
	f := newFK(t)
	name := uniq("ttykill")
	tm := startOnTerm(t, f, 24, 80, "run", "-it", "--rm", "--name", name, "busybox", "sh")
	tm.expect(0, `# (\x1b\[6n)?$`, 10*time.Second)
	f.ok("rm", "-f", name)
	if code := tm.wait(10 * time.Second); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
	tm.assertRestored()
	assertCgroupGone(t, name)
}

// TestInteractiveStdin checks -i without a terminal (stdin piped) and that stdin is not
// attached without -i.
func TestInteractiveStdin(t *testing.T) {
	f := newFK(t)
	r := f.runIn([]byte("echo from-stdin\nexit 6\n"), "run", "--rm", "-i", "busybox", "sh")
	if r.code != 6 || r.stdout != "from-stdin\n" {
		t.Errorf("-i: %s", r)
	}
	r = f.runIn([]byte("must not arrive\n"), "run", "--rm", "busybox", "cat")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("stdin reached a container run without -i: %s", r)
	}
	r = f.run("run", "--rm", "busybox", "sh", "-c", "tty; echo TERM=$TERM")
	if r.stdout != "not a tty\nTERM=\n" {
		t.Errorf("container without -t: %s", r)
	}
}
