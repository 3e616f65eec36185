//go:build linux && cgo

package nsenter

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPreforkNamesMatchC(t *testing.T) {
	if h, i, w := cPreforkNames(); h != HelperName || i != InitName || w != WatcherEnv {
		t.Fatalf("C names %q, %q and %q, Go %q, %q and %q", h, i, w, HelperName, InitName, WatcherEnv)
	}
}

// TestPreforkWanted checks the C recogniser of the command lines whose process makes its
// container itself: only those get a prefork helper (an unrecognised one is only slower).
func TestPreforkWanted(t *testing.T) {
	if !constructorLinked {
		t.Skip("no C constructor in this build")
	}
	for _, tc := range []struct {
		args  string
		watch bool
		want  bool
	}{
		{"fockker run busybox true", false, true},
		{"fockker run --rm -it busybox sh", false, true},
		{"fockker --state-root /s --image-root /i run busybox", false, true},
		{"fockker --state-root=/s -image-root /i --debug run busybox", false, true},
		{"fockker run --net none busybox ls -l", false, true},
		{"fockker run -- busybox", false, true},
		{"fockker run busybox -- ls -d", false, true},
		{"fockker run -d busybox sleep 9", false, false}, // its watcher makes it
		{"fockker run --detach busybox", false, false},   // its watcher makes it
		{"fockker run -d=true busybox", false, false},    // its watcher makes it
		{"fockker run busybox ls -d /", false, false},    // only slower
		{"fockker run --help", false, false},             // no container
		{"fockker run -h busybox", false, false},         // no container
		{"fockker run --net host busybox", false, false},
		{"fockker run --network=host busybox", false, false},
		{"fockker run --net none busybox", false, true},
		{"fockker run --net=mynet busybox", false, true},
		{"fockker watch", true, true},                           // a watcher
		{"fockker watch", false, false},                         // not started as one
		{"fockker ps", false, false},                            // no container made
		{"fockker exec c1 run", false, false},                   // exec's argument
		{"fockker --state-root run ps", false, false},           // "run" is the flag's value
		{"fockker --help run", false, false},                    // unknown global flag
		{"fockker --log-level debug run busybox", false, false}, // unknown global flag
		{"fockker", false, false},
		{"fockker --state-root", false, false},
		{"fockker -- run busybox", false, false},
	} {
		if got := cPreforkWanted(strings.Fields(tc.args), tc.watch); got != tc.want {
			t.Errorf("%q (watcher %v): prefork %v, want %v", tc.args, tc.watch, got, tc.want)
		}
	}
}

// TestStartPreforkedHelperGone: a helper that is gone before the request fails it with
// ErrNoInit and leaves the init untouched, so that the caller can still start it itself.
func TestStartPreforkedHelperGone(t *testing.T) {
	if !constructorLinked {
		t.Skip("no C constructor in this build")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	gone := exec.Command("true") // stands for the helper's process, reaped by StartPreforked
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Prefork{sock: os.NewFile(uintptr(fds[0]), "prefork"), pid: gone.Process.Pid}
	in, err := NewInit(testBinary(t), validInit())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.StartPreforked(p, [3]*os.File{}, PreforkOptions{}); !errors.Is(err, ErrNoInit) {
		t.Fatalf("StartPreforked with the helper gone: %v, want ErrNoInit", err)
	}
	if len(in.child) == 0 || in.root == nil {
		t.Error("the init was used up: it could not be started any more")
	}
	if p.sock != nil {
		t.Error("the helper's socket is still open")
	}
	if err := unix.Kill(gone.Process.Pid, 0); err == nil {
		t.Error("the helper was not reaped")
	}
}
