package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Docker's masked and read-only paths of /proc and /sys (runc mounts them in every container
// that is not privileged). Only the ones this kernel has can appear.
var (
	maskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// docker's default capabilities as /proc/self/status shows them.
const defaultCaps = "00000000a80425fb"

// statusLines picks fields of /proc/self/status output.
func statusLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func expectStatus(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := statusLines(out)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

// runSh runs sh -c script in a fresh --rm container with extra flags and returns stdout and
// stderr together (busybox reports refusals on stderr).
func (f *fk) runSh(flags []string, script string) string {
	f.t.Helper()
	args := append(append(append([]string{"run", "--rm"}, netNone(f)...), flags...), "busybox", "sh", "-c", script)
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("fockker %q: %s", args, r)
	}
	return r.stdout + r.stderr
}

// hostBlockDevice returns MAJOR MINOR of some block device of this machine, or "".
func hostBlockDevice() string {
	ents, _ := os.ReadDir("/sys/dev/block")
	for _, e := range ents {
		if maj, min, ok := strings.Cut(e.Name(), ":"); ok {
			return maj + " " + min
		}
	}
	return ""
}

// TestSecurityDefaults asks a container started without any security flag what it may do.
func TestSecurityDefaults(t *testing.T) {
	f := newFK(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if now, _ := os.Hostname(); now != hostname {
			t.Errorf("the host's hostname changed from %q to %q", hostname, now)
		}
	}()
	tests := []struct {
		name  string
		sh    string
		check func(t *testing.T, out string)
	}{
		{"capabilities are docker's", `cat /proc/self/status`, func(t *testing.T, out string) {
			expectStatus(t, out, map[string]string{"CapEff": defaultCaps, "CapPrm": defaultCaps, "CapBnd": defaultCaps,
				"CapInh": "0000000000000000", "CapAmb": "0000000000000000", "Uid": "0 0 0 0", "NoNewPrivs": "0", "Seccomp": "2"})
		}},
		{"host processes are invisible", fmt.Sprintf(`cat /proc/%d/cmdline 2>&1; echo; ls /proc | grep -c '^[0-9]'`, os.Getpid()),
			func(t *testing.T, out string) {
				if strings.Contains(out, filepath.Base(os.Args[0])) {
					t.Errorf("the test process is visible in the container:\n%s", out)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if n, _ := strconv.Atoi(lines[len(lines)-1]); n < 1 || n > 5 {
					t.Errorf("the container sees %d processes:\n%s", n, out)
				}
			}},
		{"mount is refused", `mkdir /m; mount -t tmpfs none /m; echo rc=$?; echo mounted=$(grep -c " /m " /proc/mounts)`, func(t *testing.T, out string) {
			if !strings.Contains(out, "rc=1") || !strings.Contains(out, "mounted=0") {
				t.Errorf("mount in the container:\n%s", out)
			}
		}},
		{"unshare is refused", `unshare -m true; echo m=$?; unshare -U true; echo U=$?; unshare -n true; echo n=$?`, func(t *testing.T, out string) {
			for _, rc := range []string{"m=1", "U=1", "n=1"} {
				if !strings.Contains(out, rc) {
					t.Errorf("want %s:\n%s", rc, out)
				}
			}
			if strings.Count(out, "Operation not permitted") != 3 {
				t.Errorf("want three refusals:\n%s", out)
			}
		}},
		{"modules cannot be loaded", `echo garbage > /tmp/x.ko; insmod /tmp/x.ko; echo insmod=$?; modprobe dummy; echo modprobe=$?`,
			func(t *testing.T, out string) {
				// The filter answers before the kernel looks at the module.
				if !strings.Contains(out, "insmod=1") || !strings.Contains(out, "Operation not permitted") || strings.Contains(out, "modprobe=0") {
					t.Errorf("module loading:\n%s", out)
				}
			}},
		{"/proc/sys is read-only", `echo x > /proc/sys/kernel/domainname; echo rc=$?; grep " /proc/sys " /proc/mounts`,
			func(t *testing.T, out string) {
				if !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "rc=1") || !strings.Contains(out, " ro,") {
					t.Errorf("/proc/sys:\n%s", out)
				}
			}},
		{"masked paths are empty", `for p in ` + strings.Join(maskedPaths, " ") + `; do
				if [ -d $p ]; then echo "$p dir $(ls -A $p | wc -l)"; elif [ -e $p ]; then echo "$p file $(cat $p | wc -c)"; fi
			done`, func(t *testing.T, out string) {
			for _, p := range maskedPaths {
				fi, err := os.Stat(p)
				if err != nil {
					continue // this kernel does not have it
				}
				kind := "file"
				if fi.IsDir() {
					kind = "dir"
				}
				if want := p + " " + kind + " 0"; !strings.Contains(out, want+"\n") {
					t.Errorf("want %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat("/proc/kcore"); err == nil && !strings.Contains(out, "/proc/kcore file 0") {
				t.Errorf("/proc/kcore is readable:\n%s", out)
			}
		}},
		{"device nodes can be made but not used", `mknod /dev/sda b 8 0 && echo made; head -c1 /dev/sda; ` +
			`mknod /tmp/kmsg c 1 11 && head -c1 /tmp/kmsg; ` +
			`if [ -n "` + hostBlockDevice() + `" ]; then mknod /tmp/disk b ` + hostBlockDevice() + ` && head -c1 /tmp/disk; else echo "head: no disk: Operation not permitted"; fi; ` +
			`echo zero=$(head -c1 /dev/zero | wc -c)`,
			func(t *testing.T, out string) {
				if !strings.Contains(out, "made\n") || strings.Count(out, "Operation not permitted") != 3 {
					t.Errorf("devices:\n%s", out)
				}
				if !strings.Contains(out, "zero=1") {
					t.Errorf("/dev/zero does not work:\n%s", out)
				}
			}},
		{"the hostname cannot be changed", `hostname evil; echo rc=$?; hostname`, func(t *testing.T, out string) {
			if !strings.Contains(out, "rc=1") || strings.Contains(out, "\nevil") {
				t.Errorf("hostname:\n%s", out)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, f.with(t).runSh(nil, tc.sh))
		})
	}
}

// TestSecurityOverrides relaxes and tightens the defaults the docker way.
func TestSecurityOverrides(t *testing.T) {
	f := newFK(t)
	own := procStatus(os.Getpid())
	t.Run("cap-drop ALL", func(t *testing.T) {
		out := f.with(t).runSh([]string{"--cap-drop", "ALL"}, `cat /proc/self/status; chown 1 /tmp; echo rc=$?`)
		expectStatus(t, out, map[string]string{"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "Seccomp": "2"})
		if !strings.Contains(out, "rc=1") || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("chown without CAP_CHOWN:\n%s", out)
		}
	})
	t.Run("cap-drop one, any spelling", func(t *testing.T) {
		out := f.with(t).runSh([]string{"--cap-drop", "chown", "--cap-drop", "CAP_Net_Raw"}, `grep CapEff /proc/self/status`)
		expectStatus(t, out, map[string]string{"CapEff": "00000000a80405fa"})
	})
	t.Run("cap-add SYS_ADMIN allows mount", func(t *testing.T) {
		out := f.with(t).runSh([]string{"--cap-add", "SYS_ADMIN"}, `cat /proc/self/status; mkdir /m && mount -t tmpfs none /m && grep " /m " /proc/mounts`)
		expectStatus(t, out, map[string]string{"CapEff": "00000000a82425fb", "Seccomp": "2"})
		if !strings.Contains(out, "none /m tmpfs") {
			t.Errorf("mount with CAP_SYS_ADMIN:\n%s", out)
		}
	})
	t.Run("privileged", func(t *testing.T) {
		hostname, _ := os.Hostname()
		out := f.with(t).runSh([]string{"--privileged"}, `cat /proc/self/status; mkdir /m && mount -t tmpfs none /m && echo mounted; `+
			`grep -cE " (`+strings.Join(append(maskedPaths, readonlyPaths...), "|")+`) " /proc/mounts; grep " /sys " /proc/mounts; `+
			`mknod /tmp/kmsg c 1 11 && (exec 3</tmp/kmsg) && echo kmsg-open; hostname other && hostname`)
		expectStatus(t, out, map[string]string{"CapEff": own["CapEff"], "CapBnd": own["CapBnd"], "Seccomp": "0"})
		for _, want := range []string{"mounted\n0\n", "sysfs /sys sysfs rw,", "kmsg-open", "\nother"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q:\n%s", want, out)
			}
		}
		if now, _ := os.Hostname(); now != hostname {
			t.Errorf("a privileged container changed the host's hostname to %q", now)
		}
	})
	t.Run("no-new-privileges", func(t *testing.T) {
		for _, opt := range []string{"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"} {
			out := f.with(t).runSh([]string{"--security-opt", opt}, `grep -E "NoNewPrivs|Seccomp:" /proc/self/status`)
			expectStatus(t, out, map[string]string{"NoNewPrivs": "1", "Seccomp": "2"})
		}
		out := f.with(t).runSh([]string{"--security-opt", "no-new-privileges=false"}, `grep NoNewPrivs /proc/self/status`)
		expectStatus(t, out, map[string]string{"NoNewPrivs": "0"})
	})
	t.Run("seccomp unconfined", func(t *testing.T) {
		// Creating a user namespace needs no capability: only the filter refuses it.
		out := f.with(t).runSh([]string{"--security-opt", "seccomp=unconfined"}, `grep Seccomp: /proc/self/status; unshare -U true && echo userns`)
		expectStatus(t, out, map[string]string{"Seccomp": "0"})
		if !strings.Contains(out, "userns") {
			t.Errorf("unshare -U without a filter:\n%s", out)
		}
	})
	t.Run("seccomp profile", func(t *testing.T) {
		profile := filepath.Join(t.TempDir(), "profile.json")
		js := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`
		if err := os.WriteFile(profile, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		out := f.with(t).runSh([]string{"--security-opt", "seccomp=" + profile}, `grep Seccomp: /proc/self/status; mkdir /x; echo rc=$?; unshare -U true && echo userns`)
		expectStatus(t, out, map[string]string{"Seccomp": "2"})
		for _, want := range []string{"Permission denied", "rc=1", "userns"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q:\n%s", want, out)
			}
		}
	})
	t.Run("read-only", func(t *testing.T) {
		vol := t.TempDir()
		out := f.with(t).runSh([]string{"--read-only", "-v", vol + ":/data"},
			`touch /x; echo root=$?; touch /tmp/x; echo tmp=$?; echo v > /data/f && echo vol=0; echo s > /dev/shm/f && echo shm=0; grep " / " /proc/mounts`)
		for _, want := range []string{"root=1", "tmp=1", "vol=0", "shm=0", "Read-only file system", "overlay / overlay ro,"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q:\n%s", want, out)
			}
		}
		if b, err := os.ReadFile(filepath.Join(vol, "f")); err != nil || string(b) != "v\n" {
			t.Errorf("the volume's file on the host: %q, %v", b, err)
		}
	})
	for _, tc := range []struct{ user, id, home string }{
		{"nobody", "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)", "/nonexistent"},
		{"daemon", "uid=1(daemon) gid=1(daemon) groups=1(daemon)", "/usr/sbin"},
		{"1000:1000", "uid=1000 gid=1000 groups=1000", "/"},
		{"nobody:tty", "uid=65534(nobody) gid=5(tty) groups=5(tty)", "/nonexistent"},
		{"0", "uid=0(root) gid=0(root) groups=0(root)", "/root"},
	} {
		t.Run("user "+tc.user, func(t *testing.T) {
			out := f.with(t).runSh([]string{"-u", tc.user}, `id; echo HOME=$HOME; cat /proc/self/status`)
			if !strings.Contains(out, tc.id+"\n") || !strings.Contains(out, "HOME="+tc.home+"\n") {
				t.Errorf("want %q and HOME=%s:\n%s", tc.id, tc.home, out)
			}
			eff := "0000000000000000"
			if tc.user == "0" {
				eff = defaultCaps
			}
			expectStatus(t, out, map[string]string{"CapEff": eff, "CapPrm": eff, "CapBnd": defaultCaps, "Seccomp": "2"})
		})
	}
	t.Run("user from a volume's /etc", func(t *testing.T) {
		// The user is looked up in what the container sees, volumes included, not in the
		// image underneath.
		etc := t.TempDir()
		for name, data := range map[string]string{
			"passwd": "root:x:0:0:root:/root:/bin/sh\nvuser:x:4321:4322:v:/home/v:/bin/sh\n",
			"group":  "root:x:0:\nvgroup:x:4322:\nextra:x:4323:vuser\n",
		} {
			if err := os.WriteFile(filepath.Join(etc, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := f.with(t).runSh([]string{"-v", etc + ":/etc", "-u", "vuser"}, `id -u; id -G; echo $HOME`)
		if out != "4321\n4322 4323\n/home/v\n" {
			t.Errorf("-u vuser with the volume's /etc: %q", out)
		}
	})
	t.Run("HOME set by the user wins", func(t *testing.T) {
		if out := f.with(t).runSh([]string{"-u", "nobody", "-e", "HOME=/tmp"}, `echo $HOME`); out != "/tmp\n" {
			t.Errorf("HOME %q", out)
		}
	})
}

// TestSecurityBadInput: every bad security flag is refused with exit 125 and leaves nothing
// (newFK checks the residue when the test ends).
func TestSecurityBadInput(t *testing.T) {
	f := newFK(t)
	dir := t.TempDir()
	badJSON := filepath.Join(dir, "bad.json")
	notify := filepath.Join(dir, "notify.json")
	if err := os.WriteFile(badJSON, []byte(`{"defaultAction":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notify, []byte(`{"defaultAction":"SCMP_ACT_NOTIFY"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		msg   string
	}{
		{[]string{"--cap-add", "NOPE"}, `unknown capability "NOPE"`},
		{[]string{"--cap-drop", "CAP_"}, "unknown capability"},
		{[]string{"--cap-add", "NET_ADMIN,CHOWN"}, "unknown capability"},
		{[]string{"--security-opt", "bogus"}, "--security-opt"},
		{[]string{"--security-opt", "no-new-privileges=maybe"}, "true or false"},
		{[]string{"--security-opt", "apparmor=unconfined"}, "not supported"},
		{[]string{"--security-opt", "seccomp=" + filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"--security-opt", "seccomp=" + badJSON}, "seccomp"},
		{[]string{"--security-opt", "seccomp=" + notify}, "seccomp agent"},
		{[]string{"-u", "ghost"}, "unable to find user ghost"},
		{[]string{"-u", "nobody:ghosts"}, "unable to find group ghosts"},
		{[]string{"-u", "a:b:c"}, "-u"},
		{[]string{"-u", ":0"}, "-u"},
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			f := f.with(t)
			name := uniq("bad")
			args := append(append(append([]string{"run", "--rm", "--name", name}, netNone(f)...), tc.flags...), "busybox", "true")
			r := f.fails(125, args...)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tc.msg)
			}
			if out := f.ok("ps", "-q"); out != "" {
				t.Errorf("a refused run left containers: %q", out)
			}
			assertCgroupGone(t, name)
		})
	}
}

// TestExecSecurity: an exec'd process has exactly the restrictions of the container's init.
func TestExecSecurity(t *testing.T) {
	f := newFK(t)
	for _, tc := range []struct {
		name  string
		flags []string
		want  map[string]string
	}{
		{"defaults", nil, map[string]string{"Uid": "0 0 0 0", "CapEff": defaultCaps, "CapBnd": defaultCaps, "NoNewPrivs": "0", "Seccomp": "2"}},
		{"user, no-new-privileges, cap-drop", []string{"-u", "nobody", "--security-opt", "no-new-privileges", "--cap-drop", "NET_RAW"},
			map[string]string{"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "65534",
				"CapEff": "0000000000000000", "CapBnd": "00000000a80405fb", "NoNewPrivs": "1", "Seccomp": "2"}},
		{"privileged", []string{"--privileged"}, map[string]string{"CapEff": procStatus(os.Getpid())["CapEff"], "Seccomp": "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			name := uniq("xsec")
			rec := f.detach(name, append(append(netNone(f), tc.flags...), "busybox", "sleep", "1000")...)
			initStatus := procStatus(num(t, rec, "pid"))
			out := f.ok("exec", name, "cat", "/proc/self/status")
			expectStatus(t, out, tc.want)
			got := statusLines(out)
			for _, k := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
				if strings.Join(strings.Fields(initStatus[k]), " ") != got[k] {
					t.Errorf("%s: exec'd %q, the container's init %q", k, got[k], initStatus[k])
				}
			}
			// The filter is the container's: unshare is refused unless unconfined.
			r := f.run("exec", name, "unshare", "-U", "true")
			if refused := r.code != 0; refused != (tc.want["Seccomp"] == "2") {
				t.Errorf("unshare -U in exec: %s", r)
			}
			if tc.want["Seccomp"] == "2" && !regexp.MustCompile(`Operation not permitted`).MatchString(r.stderr) {
				t.Errorf("unshare -U refused for another reason: %s", r)
			}
			f.ok("rm", "-f", name)
		})
	}
}
