package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestContainerView asks the container itself what it sees: processes, hostname, /proc,
// /dev, /sys, network, working directory.
func TestContainerView(t *testing.T) {
	f := newFK(t)
	hostHostname, _ := os.Hostname()
	name := uniq("view")
	tests := []struct {
		name  string
		flags []string
		sh    string
		want  string                         // exact output, if check is nil
		check func(t *testing.T, out string) // otherwise
	}{
		{name: "pid1", sh: `echo $$; cat /proc/1/comm; true`, want: "1\nsh\n"},
		{name: "ps shows only the container", sh: `ps -o pid,comm; true`, check: func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || strings.Fields(lines[0])[0] != "PID" {
				t.Fatalf("ps in the container lists more than sh and ps:\n%s", out)
			}
			if f := strings.Fields(lines[1]); f[0] != "1" || f[1] != "sh" {
				t.Errorf("first process %q, want 1 sh", lines[1])
			}
			if f := strings.Fields(lines[2]); f[1] != "ps" {
				t.Errorf("second process %q, want ps", lines[2])
			}
		}},
		{name: "hostname defaults to the name", flags: []string{"--name", name},
			sh: `hostname; cat /proc/sys/kernel/hostname; echo $HOSTNAME`, want: strings.Repeat(name+"\n", 3)},
		{name: "hostname flag", flags: []string{"--hostname", "box.example"},
			sh: `hostname; echo $HOSTNAME`, want: "box.example\nbox.example\n"},
		{name: "proc is the new pid namespace's", sh: `grep " /proc " /proc/mounts; ls /proc | grep -c '^[0-9]*$'; readlink /proc/self`,
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 3 || !strings.HasPrefix(lines[0], "proc /proc proc ") {
					t.Fatalf("unexpected:\n%s", out)
				}
				// sh, grep/ls/readlink: a handful of PIDs, all small; the host has far more.
				if n, _ := strconv.Atoi(lines[1]); n < 1 || n > 4 {
					t.Errorf("/proc lists %s processes, want the container's few", lines[1])
				}
				if p, _ := strconv.Atoi(lines[2]); p < 1 || p > 20 {
					t.Errorf("/proc/self is %s: not a PID of a fresh namespace", lines[2])
				}
			}},
		{name: "dev has exactly the standard nodes", sh: `ls -A /dev`, check: func(t *testing.T, out string) {
			got := strings.Fields(out)
			sort.Strings(got)
			want := []string{"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("/dev has %v, want %v", got, want)
			}
		}},
		{name: "dev nodes are the right devices",
			sh: `for d in null zero full random urandom tty; do stat -c "%n %F %t:%T" /dev/$d; done`,
			want: "/dev/null character special file 1:3\n/dev/zero character special file 1:5\n/dev/full character special file 1:7\n" +
				"/dev/random character special file 1:8\n/dev/urandom character special file 1:9\n/dev/tty character special file 5:0\n"},
		{name: "devices work", sh: `head -c 4 /dev/urandom | wc -c; head -c 3 /dev/zero | od -An -tx1 | tr -d " "; echo gone >/dev/null && echo null-ok; ` +
			`echo x >/dev/full; echo full=$?; echo shm >/dev/shm/f && cat /dev/shm/f; for l in fd stdin ptmx; do readlink /dev/$l; done; ` +
			`grep -E " /dev/(pts|shm) " /proc/mounts | cut -d" " -f1-3`,
			check: func(t *testing.T, out string) {
				want := []string{"4", "000000", "null-ok", "full=1", "shm", "/proc/self/fd", "/proc/self/fd/0", "pts/ptmx",
					"devpts /dev/pts devpts", "shm /dev/shm tmpfs"}
				if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("got %q, want %q", got, want)
				}
			}},
		{name: "dev full gives ENOSPC", sh: `echo x >/dev/full`, check: nil, want: "<stderr>"},
		{name: "no host devices", sh: `ls /dev/sda /dev/vda /dev/nvme0 /dev/mem /dev/kmsg /dev/loop0 2>/dev/null; echo end`, want: "end\n"},
		{name: "sys is read-only", sh: `grep " /sys " /proc/mounts | cut -d" " -f1-4; echo 1 >/sys/kernel/profiling; echo write=$?; touch /sys/x; echo touch=$?`,
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 3 || !strings.HasPrefix(lines[0], "sysfs /sys sysfs ro,") {
					t.Fatalf("unexpected /sys mount:\n%s", out)
				}
				if lines[1] == "write=0" || lines[2] == "touch=0" {
					t.Errorf("a write to /sys succeeded:\n%s", out)
				}
			}},
		{name: "only lo, up", sh: `ls /sys/class/net; ip -o link | cut -d" " -f2,3; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "`,
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 3 || lines[0] != "lo" || lines[2] != "lo" {
					t.Fatalf("the container sees other interfaces than lo:\n%s", out)
				}
				if !strings.HasPrefix(lines[1], "lo: <") || !strings.Contains(lines[1], ",UP") {
					t.Errorf("lo is not up: %q", lines[1])
				}
			}},
		{name: "workdir is created and used", flags: []string{"-w", "/work/dir"}, sh: `pwd`, want: "/work/dir\n"},
		{name: "root is an overlay", sh: `grep " / " /proc/mounts | cut -d" " -f1-3; ls /`, check: func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "overlay / overlay\n") {
				t.Errorf("root mount: %q", out)
			}
			for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
				if !regexp.MustCompile(`(?m)^` + d + `$`).MatchString(out) {
					t.Errorf("/%s missing from the container's root:\n%s", d, out)
				}
			}
		}},
		{name: "no host mounts", sh: `cat /proc/mounts`, check: func(t *testing.T, out string) {
			mounts := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				mounts[strings.Fields(l)[1]] = true
			}
			for _, m := range []string{"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm"} {
				if !mounts[m] {
					t.Errorf("%s is not mounted", m)
				}
				delete(mounts, m)
			}
			// Docker's masked and read-only paths (security_test.go checks them).
			for _, m := range append(maskedPaths, readonlyPaths...) {
				delete(mounts, m)
			}
			if len(mounts) > 0 {
				t.Errorf("unexpected mounts in the container: %v\n%s", mounts, out)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			args := append(append(append([]string{"run", "--rm"}, netNone(f)...), tc.flags...), "busybox", "sh", "-c", tc.sh)
			r := f.run(args...)
			if tc.want == "<stderr>" {
				if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
					t.Fatalf("want a failure with ENOSPC: %s", r)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			if tc.check != nil {
				tc.check(t, r.stdout)
			} else if r.stdout != tc.want {
				t.Errorf("got %q, want %q", r.stdout, tc.want)
			}
		})
	}
	if h, _ := os.Hostname(); h != hostHostname {
		t.Errorf("the host's hostname changed from %q to %q", hostHostname, h)
	}
}

// netNone returns the flags that keep a container off every network (only lo), once fockker
// has networks; before that, a container has only lo anyway.
func netNone(f *fk) []string {
	if strings.Contains(f.ok("run", "--help"), "--net ") {
		return []string{"--net", "none"}
	}
	return nil
}

// TestExitCodes checks docker's exit codes: the container's own, 126, 127, 125.
func TestExitCodes(t *testing.T) {
	f := newFK(t)
	tests := []struct {
		name string
		args []string
		code int
		msg  string // in stderr
	}{
		{"own code", []string{"busybox", "sh", "-c", "exit 3"}, 3, ""},
		{"not executable", []string{"busybox", "/etc/passwd"}, 126, "permission denied"},
		{"a directory", []string{"busybox", "/bin"}, 126, ""},
		{"not found in PATH", []string{"busybox", "no-such-command"}, 127, "not found"},
		{"no such path", []string{"busybox", "/no/such/file"}, 127, ""},
		{"missing image", []string{"no-such-image", "true"}, 125, "no-such-image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			name := uniq("exit")
			r := f.fails(tc.code, append([]string{"run", "--name", name}, tc.args...)...)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tc.msg)
			}
			if tc.code >= 125 && tc.code <= 127 && r.stderr == "" {
				t.Errorf("exit %d without a word on stderr", tc.code)
			}
			if tc.code >= 125 {
				// The command never ran: the container was rolled back entirely.
				if rs := f.run("inspect", name); rs.code == 0 {
					t.Errorf("a record exists after a failed start: %s", rs.stdout)
				}
				if cg := cgroupsOf(name); len(cg) > 0 {
					t.Errorf("cgroups left after a failed start: %v", cg)
				}
				f.assertNoResidue()
				return
			}
			// The container ran (or was set up): its record keeps the code until rm.
			rec := f.record(name)
			if rec["status"] != "stopped" || num(t, rec, "exitCode") != tc.code {
				t.Errorf("record: status %v, exitCode %v; want stopped, %d", rec["status"], rec["exitCode"], tc.code)
			}
			f.ok("rm", name)
			assertCgroupGone(t, name)
		})
	}
}

// TestNamespacesFromTheHost looks at a running container from the host: new namespaces,
// PID 1 inside, the overlay mounted only in the container's mount namespace, the rootfs
// behind /proc/<pid>/root, the cgroup it is in.
func TestNamespacesFromTheHost(t *testing.T) {
	f := newFK(t)
	name := uniq("ns")
	rec := f.detach(name, "busybox", "sleep", "100")
	pid := num(t, rec, "pid")

	for _, ns := range []string{"mnt", "uts", "ipc", "pid", "net"} {
		mine, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		its, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		if mine == its {
			t.Errorf("container shares the %s namespace with the host (%s)", ns, its)
		}
	}
	st := procStatus(pid)
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[1] != "1" {
		t.Errorf("NSpid %q: the container's init is not PID 1 of its own namespace", st["NSpid"])
	}
	if st["Name"] != "sleep" {
		t.Errorf("init runs %q, want sleep (exec'd, not a child of ours)", st["Name"])
	}

	// The overlay exists only in the container's mount namespace.
	if m := hostMounts(t, f.image); m != "" {
		t.Errorf("the container's mounts are visible on the host:\n%s", m)
	}
	mi, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	root := grepLines(string(mi), " / / ")
	if !strings.Contains(root, " - overlay overlay ") || !strings.Contains(root, "upperdir="+filepath.Join(f.image, "writeLayer", name)) {
		t.Errorf("the container's root is not its overlay:\n%s", root)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs("/proc/"+strconv.Itoa(pid)+"/root", &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Errorf("/proc/%d/root is filesystem %#x, want overlayfs", pid, sfs.Type)
	}
	// A file created through /proc/<pid>/root lands in the container's writeLayer.
	if err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "root", "tmp", "via-proc"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.image, "writeLayer", name, "tmp", "via-proc")); err != nil {
		t.Errorf("file written through /proc/<pid>/root is not in the writeLayer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.image, "busybox", "tmp", "via-proc")); err == nil {
		t.Errorf("file written in the container reached the image")
	}

	// The init is in the container's cgroup in every v1 controller we use.
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range []string{"memory", "pids", "cpu", "cpuset"} {
		if !regexp.MustCompile(`(?m)^\d+:[^:]*\b`+ctrl+`\b[^:]*:/fockker/`+regexp.QuoteMeta(name)+`$`).Match(cg) &&
			!strings.Contains(string(cg), "0::/fockker/"+name) {
			t.Errorf("init is not in fockker/%s for %s:\n%s", name, ctrl, cg)
		}
	}

	f.ok("rm", "-f", name)
	assertCgroupGone(t, name)
	if !procGone(pid) {
		t.Errorf("init %d still alive after rm -f", pid)
	}
}

// TestLayers checks copy-on-write: what the container writes or deletes lands in
// writeLayer/<name> (a whiteout for a deletion) and the image is never touched.
func TestLayers(t *testing.T) {
	f := newFK(t)
	before := treeSnapshot(t, shared.imageSrc)
	name := uniq("layer")
	f.ok("run", "--name", name, "busybox", "sh", "-c",
		`echo hi >/newfile && rm /etc/group && echo more >>/etc/passwd && mkdir -p /var/made && cat /etc/group 2>/dev/null; true`)
	upper := filepath.Join(f.image, "writeLayer", name)
	if b, err := os.ReadFile(filepath.Join(upper, "newfile")); err != nil || string(b) != "hi\n" {
		t.Errorf("writeLayer/newfile: %q, %v", b, err)
	}
	fi, err := os.Lstat(filepath.Join(upper, "etc", "group"))
	if err != nil {
		t.Fatalf("no whiteout for the deleted /etc/group: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode()&os.ModeCharDevice == 0 || st.Rdev != 0 {
		t.Errorf("writeLayer/etc/group is %v (rdev %d), want a 0:0 whiteout", fi.Mode(), st.Rdev)
	}
	if b, err := os.ReadFile(filepath.Join(upper, "etc", "passwd")); err != nil || !strings.HasSuffix(string(b), "more\n") {
		t.Errorf("copied-up /etc/passwd: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(upper, "var", "made")); err != nil {
		t.Errorf("new directory not in writeLayer: %v", err)
	}
	if d := diffSnapshots(before, treeSnapshot(t, shared.imageSrc)); len(d) > 0 {
		t.Errorf("the image changed: %v", d)
	}
	// A second container sees the pristine image.
	if out := f.ok("run", "--rm", "busybox", "sh", "-c", "cat /etc/group | head -1; ls /newfile 2>&1 || true"); !strings.HasPrefix(out, "root:x:0:") {
		t.Errorf("a new container does not see the image's /etc/group: %q", out)
	}
	f.ok("rm", name)
	for _, sub := range []string{"writeLayer", "workLayer", "mnt"} {
		if _, err := os.Stat(filepath.Join(f.image, sub, name)); !os.IsNotExist(err) {
			t.Errorf("%s/%s still exists after rm: %v", sub, name, err)
		}
	}
}
