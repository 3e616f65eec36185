//go:build linux && cgo

package nsenter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const busybox = "/bin/busybox"

// helperEnv makes the test binary print helperOutput and exit, if the Go
// runtime ever gets control (see TestMain).
const (
	helperEnv    = "FOCKKER_NSENTER_TEST_HELPER"
	helperOutput = "go runtime ran in helper"
)

// waitLimit only guards against a hung test; no test depends on timing.
const waitLimit = 2 * time.Minute

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		fmt.Println(helperOutput)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testBinary returns the running test binary: it links this package, so
// starting it with the private variable set runs the C constructor.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: joins namespaces and cgroups of a process it creates with unshare")
	}
}

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs a static %s to run inside the namespaces: %v", busybox, err)
	}
}

// result is how a started process ended.
type result struct {
	code           int
	stdout, stderr string
}

// start starts cmd, closes its config pipe in this process as Command asks,
// and fails the test if the start fails.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	err := cmd.Start()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	if err != nil {
		t.Fatalf("start: %v", err)
	}
}

// wait waits for a started cmd (killing it if it hangs) and returns its exit code.
func wait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish in %v", cmd.Args, waitLimit)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("wait: %v", err)
	}
	if cmd.ProcessState.ExitCode() < 0 {
		t.Fatalf("the nsenter process itself was killed: %v", cmd.ProcessState)
	}
	return cmd.ProcessState.ExitCode()
}

// run runs cmd with captured output.
func run(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start(t, cmd)
	code := wait(t, cmd)
	return result{code, stdout.String(), stderr.String()}
}

// runConfig builds a Command from c and runs it.
func runConfig(t *testing.T, c *Config) result {
	t.Helper()
	cmd, err := Command(testBinary(t), c)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	return run(t, cmd)
}

// runRaw runs the constructor on already encoded data.
func runRaw(t *testing.T, data []byte) result {
	t.Helper()
	cmd, err := command(testBinary(t), data)
	if err != nil {
		t.Fatalf("command: %v", err)
	}
	return run(t, cmd)
}

// marker returns a path that a command creates to prove it ran. It lies in
// t.TempDir(), which the test namespaces share with the host (unshare
// --mount copies the mount table), so one check covers both.
func marker(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "MARKER")
}

func touchArgs(path string) []string {
	return []string{busybox, "touch", path}
}

func requireNoMarker(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the command ran (marker %s: %v)", path, err)
	}
}

// expectSetupFailure checks a run failed before running anything.
func expectSetupFailure(t *testing.T, res result, stderrHas, markerPath string) {
	t.Helper()
	if res.code != ExitSetup {
		t.Errorf("exit code %d, want %d; stderr: %s", res.code, ExitSetup, res.stderr)
	}
	if !strings.Contains(res.stderr, stderrHas) {
		t.Errorf("stderr %q does not mention %q", res.stderr, stderrHas)
	}
	if strings.Contains(res.stdout, helperOutput) || strings.Contains(res.stderr, helperOutput) {
		t.Errorf("the constructor returned into Go")
	}
	requireNoMarker(t, markerPath)
}

// watcher collects output from a reader as it arrives.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func watch(r interface{ Read([]byte) (int, error) }) *watcher {
	w := &watcher{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			w.mu.Lock()
			w.buf.Write(b[:n])
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the output contains s.
func (w *watcher) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(w.String(), s) {
		select {
		case <-w.done:
			if !strings.Contains(w.String(), s) {
				t.Fatalf("output ended without %q: %q", s, w.String())
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output after %v: %q", s, waitLimit, w.String())
		}
	}
}
