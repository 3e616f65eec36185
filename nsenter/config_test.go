package nsenter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// validConfig returns a config that passes Validate.
func validConfig() *Config {
	return &Config{
		Pid:        42,
		StartTime:  12345,
		Namespaces: []string{NSMount, NSUTS, NSIPC, NSNet, NSPID},
		CgroupDirs: []string{"/sys/fs/cgroup/pids/fockker/abc"},
		Cwd:        "/",
		Env:        []string{"PATH=/bin", "HOME=/root"},
		Args:       []string{"sh", "-c", "echo hi"},
	}
}

// invalidCases are configs Validate must refuse. cRejects marks those the C
// decoder must refuse as well when they are encoded anyway (the others are
// rules only the Go side can check, or cannot be encoded).
var invalidCases = []struct {
	name     string
	mutate   func(c *Config)
	cRejects bool
}{
	{"pid zero", func(c *Config) { c.Pid = 0 }, true},
	{"pid negative", func(c *Config) { c.Pid = -1 }, true},
	{"pid too large", func(c *Config) { c.Pid = maxPid + 1 }, true},
	{"start time zero", func(c *Config) { c.StartTime = 0 }, true},
	{"no namespaces", func(c *Config) { c.Namespaces = nil }, true},
	{"mount namespace missing", func(c *Config) { c.Namespaces = []string{NSPID, NSNet} }, true},
	{"unknown namespace", func(c *Config) { c.Namespaces = append(c.Namespaces, "user") }, false},
	{"namespace twice", func(c *Config) { c.Namespaces = append(c.Namespaces, NSNet) }, false},
	{"relative cgroup dir", func(c *Config) { c.CgroupDirs = []string{"sys/fs/cgroup/x"} }, true},
	{"cgroup dir with dotdot", func(c *Config) { c.CgroupDirs = []string{"/sys/fs/cgroup/../x"} }, true},
	{"cgroup dir with trailing slash", func(c *Config) { c.CgroupDirs = []string{"/sys/fs/cgroup/x/"} }, true},
	{"cgroup dir with double slash", func(c *Config) { c.CgroupDirs = []string{"/sys//fs"} }, true},
	{"cgroup dir empty", func(c *Config) { c.CgroupDirs = []string{""} }, true},
	{"cgroup dir too long", func(c *Config) { c.CgroupDirs = []string{"/" + strings.Repeat("a", maxPathLen)} }, true},
	{"too many cgroup dirs", func(c *Config) {
		c.CgroupDirs = nil
		for i := 0; i <= maxCgroupDirs; i++ {
			c.CgroupDirs = append(c.CgroupDirs, "/sys/fs/cgroup/x")
		}
	}, true},
	{"relative cwd", func(c *Config) { c.Cwd = "tmp" }, true},
	{"cwd with NUL", func(c *Config) { c.Cwd = "/tmp\x00x" }, true},
	{"cwd too long", func(c *Config) { c.Cwd = "/" + strings.Repeat("a", maxPathLen) }, true},
	{"env without =", func(c *Config) { c.Env = []string{"PATH"} }, true},
	{"env with empty key", func(c *Config) { c.Env = []string{"=x"} }, true},
	{"env with NUL", func(c *Config) { c.Env = []string{"A=b\x00c"} }, true},
	{"env key twice", func(c *Config) { c.Env = []string{"A=1", "A=2"} }, false},
	{"env entry too long", func(c *Config) { c.Env = []string{"A=" + strings.Repeat("x", maxStringLen)} }, true},
	{"too many env entries", func(c *Config) {
		c.Env = nil
		for i := 0; i <= maxEnv; i++ {
			c.Env = append(c.Env, "K"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"=1")
		}
	}, true},
	{"no args", func(c *Config) { c.Args = nil }, true},
	{"empty command name", func(c *Config) { c.Args = []string{"", "x"} }, true},
	{"arg with NUL", func(c *Config) { c.Args = []string{"sh", "a\x00b"} }, true},
	{"arg too long", func(c *Config) { c.Args = []string{"sh", strings.Repeat("x", maxStringLen+1)} }, true},
	{"too many args", func(c *Config) { c.Args = make([]string, maxArgs+1); c.Args[0] = "sh" }, true},
	{"uid -1", func(c *Config) { c.Creds = &Creds{UID: ^uint32(0)} }, true},
	{"gid -1", func(c *Config) { c.Creds = &Creds{GID: ^uint32(0)} }, true},
	{"group -1", func(c *Config) { c.Creds = &Creds{Groups: []uint32{0, ^uint32(0)}} }, true},
	{"too many groups", func(c *Config) { c.Creds = &Creds{Groups: make([]uint32, maxGroups+1)} }, true},
	{"effective not permitted", func(c *Config) { c.Caps = &Caps{Bounding: 3, Effective: 3, Permitted: 1} }, true},
	{"ambient not inheritable", func(c *Config) { c.Caps = &Caps{Permitted: 1, Ambient: 1} }, true},
	{"ambient not permitted", func(c *Config) { c.Caps = &Caps{Inheritable: 1, Ambient: 1} }, true},
	{"empty seccomp filter", func(c *Config) { c.Seccomp = &Seccomp{} }, true},
	{"seccomp filter too long", func(c *Config) {
		c.Seccomp = &Seccomp{Instructions: make([]unix.SockFilter, maxFilterLen+1)}
	}, true},
	{"unknown seccomp flag", func(c *Config) { c.Seccomp = &Seccomp{Flags: 1, Instructions: allowAll()} }, true},
}

// allowAll is a seccomp filter that allows every call.
func allowAll() []unix.SockFilter {
	return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if _, err := Command("/proc/self/exe", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Command(nil) = %v, want ErrInvalidConfig", err)
	}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if _, err := c.MarshalBinary(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("MarshalBinary() = %v, want ErrInvalidConfig", err)
			}
			if _, err := Command("/proc/self/exe", c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Command() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestValidateAcceptsEdges(t *testing.T) {
	for name, mutate := range map[string]func(c *Config){
		"max pid":          func(c *Config) { c.Pid = maxPid },
		"mount only":       func(c *Config) { c.Namespaces = []string{NSMount} },
		"with cgroup ns":   func(c *Config) { c.Namespaces = append(c.Namespaces, NSCgroup) },
		"empty cwd":        func(c *Config) { c.Cwd = "" },
		"unclean cwd":      func(c *Config) { c.Cwd = "/a/../b/" },
		"no env":           func(c *Config) { c.Env = nil },
		"env empty value":  func(c *Config) { c.Env = []string{"A="} },
		"env = in value":   func(c *Config) { c.Env = []string{"A=b=c"} },
		"empty later arg":  func(c *Config) { c.Args = []string{"true", ""} },
		"max args":         func(c *Config) { c.Args = make([]string, maxArgs); c.Args[0] = "x" },
		"max string":       func(c *Config) { c.Args = []string{"x", strings.Repeat("y", maxStringLen)} },
		"no cgroup dirs":   func(c *Config) { c.CgroupDirs = nil },
		"root cgroup dir":  func(c *Config) { c.CgroupDirs = []string{"/"} },
		"max cgroup dirs":  func(c *Config) { c.CgroupDirs = make([]string, maxCgroupDirs); fill(c.CgroupDirs, "/c") },
		"tty":              func(c *Config) { c.Tty = true },
		"unicode argument": func(c *Config) { c.Args = []string{"echo", "héllo wörld \"'"} },
		"root creds":       func(c *Config) { c.Creds = &Creds{} },
		"max groups":       func(c *Config) { c.Creds = &Creds{UID: 1, GID: 1, Groups: make([]uint32, maxGroups)} },
		"no caps at all":   func(c *Config) { c.Caps = &Caps{} },
		"all caps":         func(c *Config) { all := ^uint64(0); c.Caps = &Caps{all, all, all, all, all} },
		"nnp":              func(c *Config) { c.NoNewPrivs = true },
		"seccomp":          func(c *Config) { c.Seccomp = &Seccomp{Flags: unix.SECCOMP_FILTER_FLAG_LOG, Instructions: allowAll()} },
		"max filter":       func(c *Config) { c.Seccomp = &Seccomp{Instructions: make([]unix.SockFilter, maxFilterLen)} },
	} {
		t.Run(name, func(t *testing.T) {
			c := validConfig()
			mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func fill(s []string, v string) {
	for i := range s {
		s[i] = v
	}
}

// TestMarshalBinaryLayout pins the wire format documented in nsenter.h.
func TestMarshalBinaryLayout(t *testing.T) {
	c := &Config{
		Pid:        0x010203,
		StartTime:  0x0102030405060708,
		Namespaces: []string{NSPID, NSMount, NSCgroup},
		CgroupDirs: []string{"/c"},
		Cwd:        "/w",
		Env:        []string{"A=1"},
		Args:       []string{"ls", ""},
		Tty:        true,
	}
	got, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, 'F', 'K', 'N', 'S', 2, 0x01, 0x31, 0x00)
	want = append(want, 0x03, 0x02, 0x01, 0x00)
	want = append(want, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01)
	want = append(want, 2, 0, 0, 0, '/', 'w')
	want = append(want, 1, 0, 0, 0, 2, 0, 0, 0, '/', 'c')
	want = append(want, 1, 0, 0, 0, 3, 0, 0, 0, 'A', '=', '1')
	want = append(want, 2, 0, 0, 0, 2, 0, 0, 0, 'l', 's', 0, 0, 0, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %v\nwant %v", got, want)
	}
	if binary.LittleEndian.Uint32(got[8:]) != uint32(c.Pid) {
		t.Fatal("pid not at offset 8")
	}

	// The restriction sections follow argv, in this order, each only with its flag.
	c.Tty = false
	c.NoNewPrivs = true
	c.Creds = &Creds{UID: 0x0a0b0c0d, GID: 7, Groups: []uint32{7, 0x01020304}}
	c.Caps = &Caps{Bounding: 0x1f, Effective: 0x0102030405060708, Permitted: 0x0102030405060708, Inheritable: 2, Ambient: 0}
	c.Seccomp = &Seccomp{Flags: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, Instructions: []unix.SockFilter{{Code: 0x0106, Jt: 1, Jf: 2, K: 0x7fff0000}}}
	got, err = c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want[5] = 0x02 | 0x04 | 0x08 | 0x10
	want = append(want, 0x0d, 0x0c, 0x0b, 0x0a, 7, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4, 3, 2, 1)
	want = append(want, 0x1f, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1)
	want = append(want, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 4, 0, 0, 0, 1, 0, 0, 0, 0x06, 0x01, 1, 2, 0, 0, 0xff, 0x7f)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding with restrictions\n got %v\nwant %v", got, want)
	}
}

func TestMarshalBinaryTooLarge(t *testing.T) {
	c := validConfig()
	// Each entry fits the per-string limit; together they exceed the message limit.
	c.Args = []string{"x"}
	for i := 0; i < 9; i++ {
		c.Args = append(c.Args, strings.Repeat("y", maxStringLen))
	}
	if _, err := c.MarshalBinary(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("MarshalBinary() = %v, want ErrInvalidConfig", err)
	}
}

// statTail is fields 3..21 of a stat line, then start time 777 (field 22),
// then more fields.
const statTail = " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20 21\n"

// startTimeCases is shared by the Go and the C parser tests.
var startTimeCases = []struct {
	name string
	stat string
	want uint64
	ok   bool
}{
	{"plain", "1234 (sleep)" + statTail, 777, true},
	{"comm with spaces", "1234 (a b c)" + statTail, 777, true},
	{"comm with parens", "1234 (x) S 9 (y))" + statTail, 777, true},
	{"comm empty", "1234 ()" + statTail, 777, true},
	{"no trailing newline", "1234 (sleep)" + strings.TrimSuffix(statTail, "\n"), 777, true},
	{"exactly 22 fields", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5", 5, true},
	{"max uint64", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551615", 1<<64 - 1, true},
	{"empty", "", 0, false},
	{"no comm", "1234 sleep" + statTail, 0, false},
	{"unclosed comm", "1234 (sleep S 1 2", 0, false},
	{"too few fields", "1234 (sleep) S 1 2 3", 0, false},
	{"nothing after comm", "1234 (sleep)", 0, false},
	{"start time not a number", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 1", 0, false},
	{"start time with junk", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5x 1", 0, false},
	{"start time empty", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18  1", 0, false},
	{"start time overflows", "1 (s) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551616", 0, false},
	{"double space", "1 (s)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5", 0, false},
}

func TestParseStartTime(t *testing.T) {
	for _, tc := range startTimeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStartTime([]byte(tc.stat))
			if tc.ok && (err != nil || got != tc.want) {
				t.Fatalf("parseStartTime = %d, %v; want %d", got, err, tc.want)
			}
			if !tc.ok && err == nil {
				t.Fatalf("parseStartTime = %d, want an error", got)
			}
		})
	}
	// Go's parser also checks the pid field; the C side reads stat through
	// /proc/PID itself and does not need to.
	for _, bad := range []string{"(sleep)" + statTail, "12x4 (sleep)" + statTail} {
		if got, err := parseStartTime([]byte(bad)); err == nil {
			t.Errorf("parseStartTime(%q) = %d, want an error", bad, got)
		}
	}
}

func TestStartTime(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	self, err := StartTime(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("StartTime(self) = %d, %v", self, err)
	}
	child, err := StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if child < self {
		t.Fatalf("child started at %d, before its parent at %d", child, self)
	}
	again, err := StartTime(cmd.Process.Pid)
	if err != nil || again != child {
		t.Fatalf("StartTime not stable: %d then %d (%v)", child, again, err)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := StartTime(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		// The pid may have been reused in between; only then is another answer right.
		if err != nil {
			t.Fatalf("StartTime(dead) = %v, want fs.ErrNotExist", err)
		}
	}
}

func TestParseEnviron(t *testing.T) {
	got, err := parseEnviron([]byte("A=1\x00B=x y\x00C=\x00D=e=f\x00"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=x y", "C=", "D=e=f"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, err := parseEnviron(nil); err != nil || len(got) != 0 || got == nil {
		t.Fatalf("empty environ: %q, %v; want empty non-nil", got, err)
	}
	for _, bad := range []string{"A=1", "A=1\x00NOEQUALS\x00", "\x00", "=x\x00"} {
		if _, err := parseEnviron([]byte(bad)); err == nil {
			t.Errorf("parseEnviron(%q) accepted", bad)
		}
	}
}

func TestEnviron(t *testing.T) {
	// The child says when it runs: right after execve its environ can still
	// read empty (the new stack is set up after exec's point of no return).
	cmd := exec.Command("/bin/sh", "-c", "echo ready; read x")
	cmd.Env = []string{"A=1", "B=with space", "C=quote\"'"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start /bin/sh: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("child did not start: %q, %v", line, err)
	}
	got, err := Environ(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(cmd.Env, "\n") {
		t.Fatalf("Environ = %q, want %q", got, cmd.Env)
	}
	if _, err := Environ(1 << 30); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Environ(no such pid) = %v, want fs.ErrNotExist", err)
	}
}

func TestCommandProcess(t *testing.T) {
	if !constructorLinked {
		if _, err := Command("/proc/self/exe", validConfig()); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Command without cgo = %v, want ErrUnsupported", err)
		}
		t.Skip("built without cgo")
	}
	t.Setenv("FOCKKER_NSENTER_TEST_HOST_SECRET", "must-not-leak")
	c := validConfig()
	want, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Command("/some/binary", c)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "/some/binary" || len(cmd.Args) != 1 {
		t.Fatalf("cmd = %q %q", cmd.Path, cmd.Args)
	}
	if len(cmd.Env) != 1 || cmd.Env[0] != "_FOCKKER_NSENTER_FD=3" {
		t.Fatalf("cmd.Env = %q, want only the fd variable", cmd.Env)
	}
	if len(cmd.ExtraFiles) != 1 {
		t.Fatalf("%d extra files, want 1", len(cmd.ExtraFiles))
	}
	// The whole config is already in the pipe and the write end is closed.
	r := cmd.ExtraFiles[0]
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("pipe holds %d bytes, want the %d encoded bytes", len(got), len(want))
	}
}

// TestCommandLargeConfig shows a config far larger than the default pipe
// buffer is written without a reader and without blocking.
func TestCommandLargeConfig(t *testing.T) {
	if !constructorLinked {
		t.Skip("built without cgo")
	}
	c := validConfig()
	c.Args = []string{"x"}
	for i := 0; i < 7; i++ {
		c.Args = append(c.Args, strings.Repeat("y", maxStringLen))
	}
	want, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) <= 64<<10 {
		t.Fatalf("config of %d bytes is not larger than a default pipe", len(want))
	}
	cmd, err := Command("/proc/self/exe", c)
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.ExtraFiles[0].Close()
	got, err := io.ReadAll(cmd.ExtraFiles[0])
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
}
