package security

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary act as a child that restricts itself and reports.
const childEnv = "FOCKKER_SECURITY_TEST_CHILD"

// childRequest is what a child applies before it reports: the filter, with no_new_privs.
type childRequest struct {
	Process *Process
}

// childReport is what the child saw after restricting itself, on the restricted thread.
type childReport struct {
	Status  map[string]string // /proc/thread-self/status
	Unshare string            // errno of unshare(CLONE_NEWUSER), "" on success
	Vsock   string            // errno of socket(AF_VSOCK)
	Inet    string            // errno of socket(AF_INET, SOCK_DGRAM)
	Mkdir   string            // errno of mkdir in a temporary directory
	Error   string
}

func init() {
	if os.Getenv(childEnv) == "" {
		return
	}
	// The child: everything below runs on one locked thread, like a container's init.
	runtime.LockOSThread()
	var req childRequest
	var rep childReport
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &req); err != nil {
		rep.Error = err.Error()
	} else if err := childApply(req); err != nil {
		rep.Error = err.Error()
	} else {
		rep = childProbe()
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	os.Exit(0)
}

func childApply(req childRequest) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	return req.Process.Seccomp.Load()
}

func errnoOf(err error) string {
	if err == nil {
		return ""
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func childProbe() childReport {
	rep := childReport{Status: map[string]string{}}
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			rep.Status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	rep.Unshare = errnoOf(unix.Unshare(unix.CLONE_NEWUSER))
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	rep.Vsock = errnoOf(err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	rep.Inet = errnoOf(err)
	if err == nil {
		unix.Close(fd)
	}
	dir := os.Getenv(childEnv + "_DIR")
	rep.Mkdir = errnoOf(unix.Mkdir(dir+"/sub", 0o755))
	return rep
}

func runChild(t *testing.T, req childRequest) childReport {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is private to root, and the child may be another user.
	dir, err := os.MkdirTemp("", "fockker-security-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{childEnv + "=" + string(b), childEnv + "_DIR=" + dir}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child report %q: %v", out, err)
	}
	if rep.Error != "" {
		t.Fatalf("child: %s", rep.Error)
	}
	return rep
}

func defaultProcess(t *testing.T, nnp bool) *Process {
	t.Helper()
	mask, err := CapMask(DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	f, err := BuildFilter("", DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	return &Process{Caps: mask, NoNewPrivileges: nnp, Seccomp: f}
}

// TestFilterOnKernel loads docker's default filter into a child (no root needed with
// no_new_privs) and asks the kernel what it refuses.
func TestFilterOnKernel(t *testing.T) {
	rep := runChild(t, childRequest{Process: defaultProcess(t, true)})
	if rep.Status["Seccomp"] != "2" || rep.Status["NoNewPrivs"] != "1" {
		t.Errorf("Seccomp %q, NoNewPrivs %q", rep.Status["Seccomp"], rep.Status["NoNewPrivs"])
	}
	if rep.Unshare != "EPERM" {
		t.Errorf("unshare(CLONE_NEWUSER): %q, want EPERM", rep.Unshare)
	}
	if rep.Vsock != "EPERM" {
		t.Errorf("socket(AF_VSOCK): %q, want EPERM", rep.Vsock)
	}
	if rep.Inet != "" || rep.Mkdir != "" {
		t.Errorf("allowed calls failed: socket(AF_INET) %q, mkdir %q", rep.Inet, rep.Mkdir)
	}
}
