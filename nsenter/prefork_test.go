package nsenter

import (
	"strings"
	"testing"
)

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
		{"fockker run -d busybox sleep 9", false, false},        // its watcher makes it
		{"fockker run --detach busybox", false, false},          // its watcher makes it
		{"fockker run -d=true busybox", false, false},           // its watcher makes it
		{"fockker run busybox ls -d /", false, false},           // only slower
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
