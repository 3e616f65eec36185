package tests

import (
	"strings"
	"testing"
)

func TestPid1HostnameAndArgv(t *testing.T) {
	f := newFK(t)
	name := uniq("core")
	out := f.ok("run", "--rm", "--name", name, "busybox", "sh", "-c", `echo "pid=$$"; hostname; printf '%s|' "$@"`, "x", "a  b", "c'd", `"q"`)
	want := "pid=1\n" + name + "\n" + `a  b|c'd|"q"|`
	if out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	assertCgroupGone(t, name)
}

func TestEnvironmentIsTheContainersOnly(t *testing.T) {
	f := newFK(t)
	f.env = []string{"FOCKKER_HOST_SECRET=leak"}
	out := f.ok("run", "--rm", "-e", "A=1,2", "-e", "HOSTNAME=override", "busybox", "env")
	got := strings.Fields(out)
	want := map[string]bool{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin": true,
		"HOSTNAME=override": true, "HOME=/root": true, "A=1,2": true}
	for _, kv := range got {
		if !want[kv] {
			t.Errorf("unexpected variable %q in the container (host leak?)", kv)
		}
		delete(want, kv)
	}
	if len(want) > 0 {
		t.Errorf("missing variables %v in %q", want, out)
	}
}
