//go:build linux && cgo

package nsenter

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// These tests run without root: everything they feed the constructor is
// refused before it touches a namespace.

func TestEnvNameMatchesC(t *testing.T) {
	if cEnvName() != envFD {
		t.Fatalf("C reads %q, Go sets %q", cEnvName(), envFD)
	}
}

func TestCParseStartTime(t *testing.T) {
	for _, tc := range startTimeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cParseStartTime([]byte(tc.stat))
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("C parser = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	// The real thing, against the Go parser.
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseStartTime(data)
	if got, ok := cParseStartTime(data); err != nil || !ok || got != want {
		t.Fatalf("C parser = %d, %v; Go parser = %d, %v", got, ok, want, err)
	}
}

// TestConstructorIdleWithoutVariable: a process of a binary linking this
// package runs normal Go code when the private variable is absent.
func TestConstructorIdleWithoutVariable(t *testing.T) {
	cmd := exec.Command(testBinary(t))
	cmd.Env = []string{helperEnv + "=1"}
	res := run(t, cmd)
	if res.code != 0 || !strings.Contains(res.stdout, helperOutput) {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// selfConfig targets this test process: it is real and matches its start
// time, but shares every namespace with us, so the constructor must refuse it.
func selfConfig(t *testing.T, markerPath string) *Config {
	t.Helper()
	st, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		Pid:        os.Getpid(),
		StartTime:  st,
		Namespaces: []string{NSMount, NSUTS, NSIPC, NSNet, NSPID},
		Env:        []string{"PATH=/bin:/usr/bin"},
		Args:       touchArgs(markerPath),
		// Every restriction section, so that the decoder's tests cover them.
		Creds:      &Creds{UID: 1000, GID: 1000, Groups: []uint32{1000, 10}},
		Caps:       &Caps{Bounding: 0xa80425fb},
		NoNewPrivs: true,
		Seccomp:    &Seccomp{Instructions: allowAll()},
	}
}

// TestRefusesHostProcess: a valid config (which the C decoder accepts)
// naming a process in our own namespaces is refused, so it cannot run the
// command on the host.
func TestRefusesHostProcess(t *testing.T) {
	requireBusybox(t)
	m := marker(t)
	res := runConfig(t, selfConfig(t, m))
	expectSetupFailure(t, res, "namespace; refusing to run outside a container", m)
	if strings.Contains(res.stderr, "invalid config") {
		t.Fatalf("C decoder refused a Go-encoded config: %s", res.stderr)
	}
}

func TestBadFDVariable(t *testing.T) {
	requireBusybox(t)
	m := marker(t)
	data := selfConfig(t, m).encode()
	for _, value := range []string{
		"", "abc", "3x", "x3", "-3", "+3", " 3", "3 ", "03", "0", "1", "2",
		"3.0", "0x3", "1048576", "99999999", "4294967299",
	} {
		t.Run(value, func(t *testing.T) {
			cmd, err := command(testBinary(t), data)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Env = []string{envFD + "=" + value, helperEnv + "=1"}
			expectSetupFailure(t, run(t, cmd), "is not a file descriptor number", m)
		})
	}
	t.Run("fd not open", func(t *testing.T) {
		cmd, err := command(testBinary(t), data)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = []string{envFD + "=7", helperEnv + "=1"}
		expectSetupFailure(t, run(t, cmd), "config fd 7: Bad file descriptor", m)
	})
	t.Run("fd not a pipe", func(t *testing.T) {
		path := t.TempDir() + "/config"
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testBinary(t))
		cmd.Env = []string{envFD + "=3", helperEnv + "=1"}
		cmd.ExtraFiles = []*os.File{f}
		expectSetupFailure(t, run(t, cmd), "config fd 3 is not a pipe", m)
	})
}

// TestMalformedConfig feeds the C decoder broken messages.
func TestMalformedConfig(t *testing.T) {
	requireBusybox(t)
	m := marker(t)
	good := selfConfig(t, m).encode()
	patch := func(off int, b ...byte) []byte {
		d := bytes.Clone(good)
		copy(d[off:], b)
		return d
	}
	header := configHeaderSize
	cases := map[string][]byte{
		"empty":        {},
		"bad magic":    patch(0, 'F', 'K', 'N', 'X'),
		"version 0":    patch(4, 0),
		"version 1":    patch(4, 1),
		"version 3":    patch(4, 3),
		"unknown flag": patch(5, 0x40|0x1e),
		"flag without its section": func() []byte {
			c := selfConfig(t, m)
			c.Seccomp = nil
			d := c.encode()
			d[5] |= flagSeccomp
			return d
		}(),
		"section without its flag": patch(5, flagNNP|flagCaps|flagSeccomp),
		"unknown ns bit":           patch(6, 0x41),
		"unknown ns byte2":         patch(7, 0x01),
		"cwd length huge":          patch(header, 0xff, 0xff, 0xff, 0xff),
		"cwd length past end": func() []byte {
			d := bytes.Clone(good)
			binary.LittleEndian.PutUint32(d[header:], uint32(len(d)))
			return d
		}(),
		"cgroup count huge":                    patch(header+4, 0xff, 0xff, 0xff, 0xff),
		"cgroup count fits limit but not data": patch(header+4, maxCgroupDirs),
		"trailing byte":                        append(bytes.Clone(good), 0),
		"trailing garbage":                     append(bytes.Clone(good), "FKNS"...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			expectSetupFailure(t, runRaw(t, data), "invalid config", m)
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(good); n++ {
			res := runRaw(t, good[:n])
			expectSetupFailure(t, res, "invalid config", m)
			if t.Failed() {
				t.Fatalf("truncated to %d of %d bytes: %+v", n, len(good), res)
			}
		}
	})
	t.Run("larger than the limit", func(t *testing.T) {
		// Too big for command()'s pipe, so stream it while the constructor reads.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testBinary(t))
		cmd.Env = []string{envFD + "=3", helperEnv + "=1"}
		cmd.ExtraFiles = []*os.File{r}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start(t, cmd)
		go func() {
			defer w.Close()
			_, _ = w.Write(append(bytes.Clone(good), make([]byte, maxConfigSize)...))
		}()
		code := wait(t, cmd)
		expectSetupFailure(t, result{code, stdout.String(), stderr.String()}, "larger than 1048576 bytes", m)
	})
}

// TestInvalidConfigsRejectedByC: what Validate refuses, the C decoder
// refuses too when it gets it anyway.
func TestInvalidConfigsRejectedByC(t *testing.T) {
	requireBusybox(t)
	m := marker(t)
	for _, tc := range invalidCases {
		if !tc.cRejects {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := selfConfig(t, m)
			c.CgroupDirs = []string{"/sys/fs/cgroup/pids"}
			c.Cwd = "/"
			tc.mutate(c)
			expectSetupFailure(t, runRaw(t, c.encode()), "invalid config", m)
		})
	}
}

// TestMaxSizeConfig: a config of exactly the size limit goes through the pipe
// and the C decoder (which then refuses the host target, as it should).
func TestMaxSizeConfig(t *testing.T) {
	requireBusybox(t)
	m := marker(t)
	c := selfConfig(t, m)
	for {
		size := len(c.encode())
		if size == maxConfigSize {
			break
		}
		room := maxConfigSize - size - 4 // each argument costs 4 bytes plus its length
		if room < 0 {
			t.Fatalf("overshot: %d bytes", size)
		}
		c.Args = append(c.Args, strings.Repeat("a", min(room, maxStringLen)))
	}
	res := runConfig(t, c)
	expectSetupFailure(t, res, "namespace; refusing to run outside a container", m)

	c.Args = append(c.Args, "")
	if _, err := c.MarshalBinary(); err == nil {
		t.Fatal("a config one argument over the limit was encoded")
	}
	expectSetupFailure(t, runRaw(t, c.encode()[:maxConfigSize]), "invalid config", m)
}
