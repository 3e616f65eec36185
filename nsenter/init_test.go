//go:build linux && cgo

package nsenter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInitEnvNameMatchesC(t *testing.T) {
	if cInitEnvName() != initEnvFD {
		t.Fatalf("C reads %q, Go sets %q", cInitEnvName(), initEnvFD)
	}
}

func validInit() *InitConfig {
	return &InitConfig{
		Overlay:       "lowerdir=/l,upperdir=/u,workdir=/w",
		Root:          "/merged",
		Hostname:      "box",
		Cwd:           "/work/dir",
		Restrict:      true,
		MaskedPaths:   []string{"/proc/kcore"},
		ReadonlyPaths: []string{"/proc/sys"},
		Volumes:       []Bind{{Source: "/srv/data", Target: "/data", ReadOnly: true}},
	}
}

func TestInitConfigValidate(t *testing.T) {
	if _, err := validInit().MarshalBinary(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mutate := range map[string]func(c *InitConfig){
		"no overlay":          func(c *InitConfig) { c.Overlay = "" },
		"NUL in overlay":      func(c *InitConfig) { c.Overlay += "\x00" },
		"relative root":       func(c *InitConfig) { c.Root = "merged" },
		"root is /":           func(c *InitConfig) { c.Root = "/" },
		"unclean root":        func(c *InitConfig) { c.Root = "/a/../b" },
		"no hostname":         func(c *InitConfig) { c.Hostname = "" },
		"long hostname":       func(c *InitConfig) { c.Hostname = strings.Repeat("h", 65) },
		"relative cwd":        func(c *InitConfig) { c.Cwd = "work" },
		"unclean cwd":         func(c *InitConfig) { c.Cwd = "/work/" },
		"unclean masked path": func(c *InitConfig) { c.MaskedPaths = []string{"/proc//kcore"} },
		"relative volume":     func(c *InitConfig) { c.Volumes[0].Source = "data" },
		"volume on /":         func(c *InitConfig) { c.Volumes[0].Target = "/" },
		"unclean volume":      func(c *InitConfig) { c.Volumes[0].Target = "/data/." },
		"too many volumes":    func(c *InitConfig) { c.Volumes = make([]Bind, maxVolumes+1) },
	} {
		c := validInit()
		mutate(c)
		if _, err := c.MarshalBinary(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// runInitRaw starts the init constructor on a raw root message (nil: none at all) and
// returns its exit code and what it reported on its status fd. As root the child gets a
// mount namespace of its own, so even a wrongly accepted message could not touch ours.
func runInitRaw(t *testing.T, msg []byte) (int, string, result) {
	t.Helper()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stR.Close()
	if msg != nil {
		if _, err := ctlW.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	ctlW.Close()
	cmd := exec.Command(testBinary(t))
	cmd.Env = []string{initEnvFD + "=3", helperEnv + "=1"}
	cmd.ExtraFiles = []*os.File{ctlR, stW} // run closes them once started
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	}
	res := run(t, cmd)
	report, err := io.ReadAll(stR)
	if err != nil {
		t.Fatal(err)
	}
	return res.code, string(report), res
}

func TestInitRefusesMalformed(t *testing.T) {
	good, err := validInit().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	header := func(flags, reserved byte) []byte {
		b := append([]byte(initMagic), initVersion, flags, reserved, 0)
		return append(b, good[initHeaderSize:]...)
	}
	for _, tc := range []struct {
		name, why string
		msg       []byte
	}{
		{"no message", "no root config", nil},
		{"short length", "truncated", []byte{1, 0}},
		{"length beyond data", "truncated", binary.LittleEndian.AppendUint32(nil, 100)},
		{"too long", "exceed the limit", binary.LittleEndian.AppendUint32(nil, maxConfigSize+1)},
		{"bad magic", "bad magic", frame(append([]byte("XXXX"), good[4:]...))},
		{"bad version", "unsupported version", frame(append([]byte(initMagic), append([]byte{9}, good[5:]...)...))},
		{"unknown flag", "unknown flags", frame(header(0x80, 0))},
		{"reserved byte", "reserved", frame(header(0, 1))},
		{"trailing bytes", "trailing bytes", frame(append(append([]byte{}, good...), 0))},
		{"truncated body", "truncated", frame(good[:len(good)-3])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, report, res := runInitRaw(t, tc.msg)
			if code != ExitSetup || !strings.Contains(report, tc.why) || len(report) == 0 || report[0] != ExitSetup {
				t.Errorf("exit %d, report %q; want %d and %q", code, report, ExitSetup, tc.why)
			}
			if strings.Contains(res.stdout, helperOutput) {
				t.Error("the Go runtime ran")
			}
		})
	}
}

// TestInitBuildsRoot starts a real init in new namespaces on a tiny root (a static busybox):
// it must join nothing it was not told to, mount the overlay, /proc, /dev, a volume through
// a symlink that points out of the root (which must land inside), set the hostname and run
// the command with its environment.
func TestInitBuildsRoot(t *testing.T) {
	requireRoot(t)
	requireBusybox(t)
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	outside := filepath.Join(dir, "outside")
	vol := filepath.Join(dir, "vol")
	for _, d := range []string{upper, work, merged, outside, vol} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	putBusybox(t, lower)
	if err := os.WriteFile(vol+"/file", []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// /escape points at a host directory by an absolute path; inside the root it is /<outside>.
	if err := os.Symlink(outside, lower+"/escape"); err != nil {
		t.Fatal(err)
	}
	in, err := NewInit(testBinary(t), &InitConfig{
		Overlay:  "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work,
		Root:     merged,
		Hostname: "initbox",
		Cwd:      "/made/here",
		Loopback: true,
		Restrict: true, MaskedPaths: []string{"/proc/keys"}, ReadonlyPaths: []string{"/proc/sys"},
		Volumes: []Bind{{Source: vol, Target: "/escape/vol", ReadOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out, errOut bytes.Buffer
	in.Cmd.Stdout, in.Cmd.Stderr = &out, &errOut
	in.Cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID | unix.CLONE_NEWNET}
	err = in.Cmd.Start()
	in.Started()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.SendRoot(); err != nil {
		t.Fatal(err)
	}
	if err := in.Ready(); err != nil {
		t.Fatalf("ready: %v (stderr %q)", err, errOut.String())
	}
	st, err := StartTime(in.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	script := `echo "$(/bin/busybox hostname) $$ $(/bin/busybox pwd) $GREETING"; /bin/busybox cat "/$OUTSIDE/vol/file"; ` +
		`/bin/busybox touch "/$OUTSIDE/vol/new" 2>/dev/null && echo writable; /bin/busybox wc -c < /proc/keys`
	if err := sendAndRun(in, &Config{
		Pid: in.Cmd.Process.Pid, StartTime: st, Namespaces: []string{NSMount},
		Cwd:  "/made/here",
		Env:  []string{"GREETING=hello", "OUTSIDE=" + strings.TrimPrefix(outside, "/")},
		Args: []string{"/bin/busybox", "sh", "-c", script},
	}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if code := wait(t, in.Cmd); code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	want := "initbox 1 /made/here hello\nfrom the host\n0\n"
	if out.String() != want {
		t.Errorf("stdout %q, want %q (stderr %q)", out.String(), want, errOut.String())
	}
	// The volume went to <root>/<outside>/vol, made in the upper layer; the host's own
	// directory behind the symlink was never touched.
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the symlink led out of the root: %s holds %v", outside, ents)
	}
	if _, err := os.Stat(filepath.Join(upper, outside, "vol")); err != nil {
		t.Errorf("volume mount point not made inside the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(upper, "made/here")); err != nil {
		t.Errorf("working directory not made: %v", err)
	}
}

// sendAndRun sends the init its command and waits until it runs or fails.
func sendAndRun(in *Init, c *Config) error {
	if err := in.SendCommand(c); err != nil {
		return err
	}
	return in.Executed()
}

// putBusybox copies the static busybox to lower/bin/busybox, for an image of one file.
func putBusybox(t *testing.T, lower string) {
	t.Helper()
	if err := os.MkdirAll(lower+"/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lower+"/bin/busybox", bb, 0o755); err != nil {
		t.Fatal(err)
	}
}

// startTinyInit starts an init on an overlay of dir/lower (made by the caller, or empty) in new
// mount and PID namespaces, with the root restrictions of a container that is not privileged.
// The directories it mounts are made only once it runs: it waits for SendRoot.
func startTinyInit(t *testing.T, dir string) *Init {
	t.Helper()
	in := newTinyInit(t, dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.SendRoot(); err != nil {
		t.Fatal(err)
	}
	return in
}

// newTinyInit starts startTinyInit's init without sending it its root.
func newTinyInit(t *testing.T, dir string) *Init {
	t.Helper()
	in, err := NewInit(testBinary(t), &InitConfig{
		Overlay:  "lowerdir=" + dir + "/lower,upperdir=" + dir + "/upper,workdir=" + dir + "/work",
		Root:     dir + "/merged",
		Hostname: "x",
		Restrict: true, MaskedPaths: []string{"/proc/keys"}, ReadonlyPaths: []string{"/proc/sys"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	in.Cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID}
	err = in.Cmd.Start()
	in.Started()
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestInitRootOnce: the root is sent once; an init given up before it has its root exits
// 125 without building anything.
func TestInitRootOnce(t *testing.T) {
	requireRoot(t)
	in := startTinyInit(t, t.TempDir())
	if err := in.SendRoot(); err == nil {
		t.Error("a second SendRoot succeeded")
	}
	if err := in.Ready(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	early := newTinyInit(t, dir)
	early.Close()
	if code := wait(t, early.Cmd); code != ExitSetup {
		t.Errorf("an init closed before its root: exit %d, want %d", code, ExitSetup)
	}
	if err := early.SendRoot(); err == nil {
		t.Error("SendRoot after Close succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "merged")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was made: %v", err)
	}
}

// TestInitCommandBeforeReady: the command may be sent before the init reports ready, even one
// larger than the pipe holds (the send then waits until the init, done with its root, reads
// it); and an init whose root fails while a command waits in the pipe reports its own failure.
func TestInitCommandBeforeReady(t *testing.T) {
	requireRoot(t)
	requireBusybox(t)
	dir := t.TempDir()
	putBusybox(t, dir+"/lower")
	in := startTinyInit(t, dir)
	big := strings.Repeat("x", 100<<10) // four of them: three times a default pipe
	cfg := &Config{Pid: in.Cmd.Process.Pid, StartTime: 1, Namespaces: []string{NSMount},
		Env:  []string{"A=" + big, "B=" + big, "C=" + big, "D=" + big},
		Args: []string{"/bin/busybox", "sh", "-c", fmt.Sprintf(`[ "${#A}${#B}${#C}${#D}" = %s ]`, strings.Repeat(fmt.Sprint(len(big)), 4))}}
	if err := in.SendCommand(cfg); err != nil {
		t.Fatalf("send before ready: %v", err)
	}
	if err := in.SendCommand(cfg); err == nil {
		t.Error("a second SendCommand succeeded")
	}
	if err := in.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if err := in.Executed(); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if code := wait(t, in.Cmd); code != 0 {
		t.Fatalf("exit %d: the command did not get its whole environment", code)
	}

	// The root cannot be built (no lower directory): the init's report wins over whatever
	// sending the command met.
	bad := t.TempDir()
	in = newTinyInit(t, bad)
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(bad, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.SendRoot(); err != nil {
		t.Fatal(err)
	}
	sendErr := in.SendCommand(&Config{Pid: in.Cmd.Process.Pid, StartTime: 1, Namespaces: []string{NSMount}, Args: []string{"/bin/true"}})
	var ie *InitError
	if err := in.Ready(); !errors.As(err, &ie) || ie.Code != ExitSetup || !strings.Contains(ie.Msg, "overlay") {
		t.Errorf("ready with a broken root: %v (send: %v), want the init's 125 report on the overlay", err, sendErr)
	}
	if code := wait(t, in.Cmd); code != ExitSetup {
		t.Errorf("exit %d, want %d", code, ExitSetup)
	}
}

// TestInitReportsExecFailure: a command that does not exist is reported with 127.
func TestInitReportsExecFailure(t *testing.T) {
	requireRoot(t)
	in := startTinyInit(t, t.TempDir())
	if err := in.Ready(); err != nil {
		t.Fatal(err)
	}
	err := sendAndRun(in, &Config{Pid: in.Cmd.Process.Pid, StartTime: 1, Namespaces: []string{NSMount}, Args: []string{"no-such-command"}})
	var ie *InitError
	if !errors.As(err, &ie) || ie.Code != ExitNotFound || !strings.Contains(ie.Msg, "no-such-command") {
		t.Errorf("exec: %v, want a 127 report", err)
	}
	if code := wait(t, in.Cmd); code != ExitNotFound {
		t.Errorf("exit %d, want %d", code, ExitNotFound)
	}
}

// TestInitRefusesSymlinkedProc: an image whose /proc (or /sys, /dev) is a symlink would get the
// kernel's file system mounted where the masks, which name /proc/..., do not reach it: refused.
func TestInitRefusesSymlinkedProc(t *testing.T) {
	requireRoot(t)
	for _, name := range []string{"proc", "sys", "dev"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "lower", "elsewhere"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/elsewhere", filepath.Join(dir, "lower", name)); err != nil {
				t.Fatal(err)
			}
			in := startTinyInit(t, dir)
			err := in.Ready()
			var ie *InitError
			if !errors.As(err, &ie) || ie.Code != ExitSetup || !strings.Contains(ie.Msg, "/"+name) {
				t.Errorf("ready: %v, want a 125 report naming /%s", err, name)
			}
			if code := wait(t, in.Cmd); code != ExitSetup {
				t.Errorf("exit %d, want %d", code, ExitSetup)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "lower", "elsewhere")); len(ents) != 0 {
				t.Errorf("something was made behind the symlink: %v", ents)
			}
		})
	}
}

// TestInitStart: Init.Start (no os/exec) starts the init in its namespaces with /dev/null for
// nil streams; Process waits for it once, and signals it only while it lives.
func TestInitStart(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	in, err := NewInit(testBinary(t), &InitConfig{
		Overlay:  "lowerdir=" + dir + "/lower,upperdir=" + dir + "/upper,workdir=" + dir + "/work",
		Root:     dir + "/merged",
		Hostname: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := in.Start([3]*os.File{nil, nil, w}, &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	// It runs in a PID namespace of its own, with /dev/null, readable and writable, on stdin
	// and stdout.
	for _, fd := range []int{0, 1} {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.Pid, fd)); err != nil || target != os.DevNull {
			t.Errorf("fd %d is %q (%v), want %s", fd, target, err, os.DevNull)
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", p.Pid, fd))
		var flags int
		if err == nil {
			_, err = fmt.Sscanf(strings.SplitN(string(info), "flags:", 2)[1], "%o", &flags)
		}
		if err != nil || flags&unix.O_ACCMODE != unix.O_RDWR {
			t.Errorf("fd %d not open read-write: %q (%v)", fd, info, err)
		}
	}
	self, _ := os.Readlink("/proc/self/ns/pid")
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.Pid)); err != nil || ns == self {
		t.Errorf("pid namespace %q (%v), ours %q", ns, err, self)
	}
	if err := p.Signal(unix.SIGKILL); err != nil {
		t.Fatalf("signal a live init: %v", err)
	}
	ws, err := p.Wait()
	if err != nil || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("wait: %v %v, want killed by SIGKILL", ws, err)
	}
	if again, err := p.Wait(); err != nil || again != ws {
		t.Errorf("second wait: %v %v", again, err)
	}
	if err := p.Signal(unix.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal after wait: %v, want os.ErrProcessDone", err)
	}
	p.Release()
	if err := p.Signal(unix.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal after release: %v, want os.ErrProcessDone", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "merged")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was made: %v", err)
	}
}
