package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDetachedWatcher checks run -d: it returns with the seed's message while the container
// runs; the watcher exists, is init's parent, leads its own session, and records the exit.
func TestDetachedWatcher(t *testing.T) {
	f := newFK(t)
	name := uniq("det")
	rec := f.detach(name, "busybox", "sh", "-c", "sleep 0.5; exit 5")
	if rec["status"] != "running" {
		t.Errorf("status right after run -d: %v", rec["status"])
	}
	pid, wpid := num(t, rec, "pid"), num(t, rec, "watcherPid")
	ws := procStatus(wpid)
	if ws == nil {
		t.Fatalf("watcher %d does not exist", wpid)
	}
	if is := procStatus(pid); is == nil {
		t.Errorf("init %d does not exist right after run -d", pid)
	} else if is["PPid"] != strconv.Itoa(wpid) {
		t.Errorf("init's parent is %s, want the watcher %d", is["PPid"], wpid)
	}
	if sid := procSession(t, wpid); sid != wpid {
		t.Errorf("watcher %d is in session %d, not its own", wpid, sid)
	}
	if sid := procSession(t, wpid); sid == procSession(t, os.Getpid()) {
		t.Errorf("watcher shares the caller's session")
	}
	// While the container runs, the watcher is the lean C waiter (container/waiter): one
	// thread and no Go runtime, still the same process and init's parent.
	waitFor(t, "the watcher to become the lean waiter", 5*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", wpid))
		return string(b) == "fockker\x00watch-wait\x00"
	})
	if ws = procStatus(wpid); ws != nil {
		if ws["Threads"] != "1" {
			t.Errorf("lean waiter %d has %s threads, want 1 (no Go runtime)", wpid, ws["Threads"])
		}
		t.Logf("watcher %d: VmRSS %s, VmHWM %s, threads %s", wpid, ws["VmRSS"], ws["VmHWM"], ws["Threads"])
	}

	rec = f.waitStatus(name, "stopped", 10*time.Second)
	// ps may reconcile before the watcher writes: wait for the recorded exit code.
	waitFor(t, "the watcher to record the exit code", 5*time.Second, func() bool {
		_, ok := f.record(name)["exitCode"]
		return ok
	})
	rec = f.record(name)
	if num(t, rec, "exitCode") != 5 || rec["finishedAt"] == nil {
		t.Errorf("recorded exitCode %v finishedAt %v, want 5", rec["exitCode"], rec["finishedAt"])
	}
	waitFor(t, "the watcher to exit", 5*time.Second, func() bool { return procGone(wpid) })
	if !strings.Contains(f.ok("ps"), "stopped (5)") {
		t.Errorf("ps does not show the exit code:\n%s", f.ok("ps"))
	}
}

// TestDetachedRm checks --rm with -d: the watcher removes everything when the container ends.
func TestDetachedRm(t *testing.T) {
	f := newFK(t)
	name := uniq("detrm")
	rec := f.detach(name, "--rm", "busybox", "sh", "-c", "sleep 0.3")
	wpid := num(t, rec, "watcherPid")
	waitFor(t, "the container to be removed", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(f.state, name))
		return os.IsNotExist(err)
	})
	waitFor(t, "the watcher to exit", 5*time.Second, func() bool { return procGone(wpid) })
	assertCgroupGone(t, name)
	f.assertNoResidue()
}

// TestForegroundRm checks --rm for an attached container.
func TestForegroundRm(t *testing.T) {
	f := newFK(t)
	name := uniq("fgrm")
	r := f.fails(4, "run", "--rm", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
	if r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("attached output: %s", r)
	}
	assertCgroupGone(t, name)
	f.assertNoResidue()
}

// TestStop covers stop's escalation and its harmless cases.
func TestStop(t *testing.T) {
	f := newFK(t)

	t.Run("TERM handled", func(t *testing.T) {
		f := f.with(t)
		name := uniq("term")
		rec := f.detach(name, "busybox", "sh", "-c", `trap "exit 7" TERM; echo ready; while true; do sleep 0.1; done`)
		waitFor(t, "the trap to be set", 5*time.Second, func() bool { return strings.Contains(f.ok("logs", name), "ready") })
		out := f.ok("stop", "-t", "20", name)
		if want := "Container: " + name + ", ID: " + rec["id"].(string) + ", stopped\n"; out != want {
			t.Errorf("stop printed %q, want %q", out, want)
		}
		rec = f.record(name)
		if rec["status"] != "stopped" || num(t, rec, "exitCode") != 7 {
			t.Errorf("status %v exitCode %v, want stopped 7 (its own TERM handler)", rec["status"], rec["exitCode"])
		}
		if !procGone(num(t, rec, "pid")) {
			t.Errorf("init still alive")
		}
	})

	t.Run("TERM ignored is killed", func(t *testing.T) {
		f := f.with(t)
		name := uniq("kill")
		rec := f.detach(name, "busybox", "sh", "-c", `trap "" TERM; echo ready; while true; do sleep 0.1; done`)
		pid := num(t, rec, "pid")
		waitFor(t, "the trap to be set", 5*time.Second, func() bool { return strings.Contains(f.ok("logs", name), "ready") })
		start := time.Now()
		f.ok("stop", "-t", "1", name)
		t.Logf("stop -t 1 took %v", time.Since(start))
		if !procGone(pid) {
			t.Errorf("init %d survived stop", pid)
		}
		waitFor(t, "the exit code", 5*time.Second, func() bool { _, ok := f.record(name)["exitCode"]; return ok })
		rec = f.record(name)
		if rec["status"] != "stopped" || num(t, rec, "exitCode") != 137 {
			t.Errorf("status %v exitCode %v, want stopped 137 (SIGKILL)", rec["status"], rec["exitCode"])
		}
	})

	t.Run("stopped container", func(t *testing.T) {
		f := f.with(t)
		name := uniq("stopped")
		f.ok("run", "--name", name, "busybox", "true")
		// Point the stale record at a live process that is not the container: stop must
		// not signal it.
		victim := sleeper(t)
		f.editRecord(name, map[string]any{"pid": victim.Process.Pid})
		before := f.record(name)
		out := f.ok("stop", name)
		if !strings.Contains(out, "is not running") {
			t.Errorf("stop of a stopped container printed %q", out)
		}
		if procGone(victim.Process.Pid) {
			t.Fatalf("stop signalled an unrelated process")
		}
		if after := f.record(name); after["finishedAt"] != before["finishedAt"] || after["status"] != "stopped" {
			t.Errorf("stop changed a stopped record: %v -> %v", before, after)
		}
	})

	t.Run("several names", func(t *testing.T) {
		f := f.with(t)
		a, b := uniq("multi"), uniq("multi")
		f.detach(a, "busybox", "sleep", "100")
		f.detach(b, "busybox", "sleep", "100")
		r := f.run("stop", "-t", "0", a, "no-such-container", b)
		if r.code != 125 || !strings.Contains(r.stderr, "no-such-container") {
			t.Errorf("stop with one unknown name: %s", r)
		}
		for _, n := range []string{a, b} {
			if !strings.Contains(r.stdout, "Container: "+n+",") {
				t.Errorf("stop did not report %s: %q", n, r.stdout)
			}
			if st := f.record(n)["status"]; st != "stopped" {
				t.Errorf("%s: status %v after stop", n, st)
			}
		}
	})
}

// TestRm covers rm's refusal, -f, and that nothing is left afterwards.
func TestRm(t *testing.T) {
	f := newFK(t)
	name := uniq("rm")
	rec := f.detach(name, "busybox", "sleep", "100")
	pid, wpid := num(t, rec, "pid"), num(t, rec, "watcherPid")

	r := f.fails(125, "rm", name)
	if !strings.Contains(r.stderr, "running") {
		t.Errorf("rm of a running container: %s", r)
	}
	if procGone(pid) || f.record(name)["status"] != "running" {
		t.Fatalf("rm without -f touched the running container")
	}
	if out := f.ok("rm", "-f", name); out != "Container: "+name+", ID: "+rec["id"].(string)+", removed\n" {
		t.Errorf("rm -f printed %q", out)
	}
	if !procGone(pid) {
		t.Errorf("init %d still alive after rm -f", pid)
	}
	waitFor(t, "the watcher to exit", 5*time.Second, func() bool { return procGone(wpid) })
	if r := f.run("inspect", name); r.code != 125 {
		t.Errorf("inspect after rm: %s", r)
	}
	assertCgroupGone(t, name)
	f.assertNoResidue()
	if _, err := os.Stat(filepath.Join(f.state, name)); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
	// Removing it again is an error about the name, not a crash.
	if r := f.fails(125, "rm", name); !strings.Contains(r.stderr, "no such container") {
		t.Errorf("second rm: %s", r)
	}
}

// TestLogs checks that a detached container's stdout and stderr both reach logs, and that
// logs -f follows until the container stops and then returns by itself.
func TestLogs(t *testing.T) {
	f := newFK(t)

	t.Run("stdout and stderr", func(t *testing.T) {
		f := f.with(t)
		name := uniq("logs")
		f.detach(name, "busybox", "sh", "-c", "echo to-stdout; echo to-stderr >&2")
		f.waitStatus(name, "stopped", 10*time.Second)
		out := f.ok("logs", name)
		if !strings.Contains(out, "to-stdout\n") || !strings.Contains(out, "to-stderr\n") {
			t.Errorf("logs: %q", out)
		}
	})

	t.Run("follow", func(t *testing.T) {
		f := f.with(t)
		name := uniq("follow")
		f.detach(name, "busybox", "sh", "-c", `for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.15; done`)
		cmd := f.nsCommand("logs", "-f", name)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var lines []string
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			done <- cmd.Wait()
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("logs -f: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("logs -f did not return after the container stopped; got %q", lines)
		}
		want := []string{"line-1", "line-2", "line-3", "line-4", "line-5", "line-6", "line-7", "line-8"}
		if strings.Join(lines, ",") != strings.Join(want, ",") {
			t.Errorf("logs -f printed %q, want %q", lines, want)
		}
		if st := f.record(name)["status"]; st != "stopped" {
			t.Errorf("logs -f returned while the container is %v", st)
		}
	})

	t.Run("attached container has no log", func(t *testing.T) {
		f := f.with(t)
		name := uniq("nolog")
		f.ok("run", "--name", name, "busybox", "true")
		if r := f.run("logs", name); r.code != 125 || r.stderr == "" {
			t.Errorf("logs of an attached container: %s", r)
		}
	})
}

// TestPs checks ps's table, -q and json, and that it reconciles records with the kernel.
func TestPs(t *testing.T) {
	f := newFK(t)
	// The seed's columns, in order; later issues may append columns (e.g. IP).
	header := regexp.MustCompile(`^ID +NAME +PID +STATUS +COMMAND +CREATED( +[A-Z]+)*$`)
	if out := f.ok("ps"); !header.MatchString(strings.TrimSpace(out)) || strings.Count(out, "\n") != 1 {
		t.Errorf("empty ps: %q", out)
	}
	run := uniq("ps")
	done := uniq("ps")
	rrec := f.detach(run, "busybox", "sh", "-c", "sleep 100")
	f.fails(3, "run", "--name", done, "busybox", "sh", "-c", "exit 3")
	drec := f.record(done)

	out := f.ok("ps")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !header.MatchString(lines[0]) || len(lines) != 3 {
		t.Fatalf("ps table:\n%s", out)
	}
	row := regexp.MustCompile(`^(\d{10}) +(\S+) +(\S+) +(running|stopped \(\d+\)) +(.*?) +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)( +\S+)*$`)
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ps row %q does not match the seed's columns", l)
		}
		rows[m[2]] = m
	}
	if m := rows[run]; m == nil || m[1] != rrec["id"] || m[3] != strconv.Itoa(num(t, rrec, "pid")) || m[4] != "running" || m[5] != `sh -c "sleep 100"` {
		t.Errorf("running row: %q", m)
	}
	if m := rows[done]; m == nil || m[1] != drec["id"] || m[3] != "-" || m[4] != "stopped (3)" {
		t.Errorf("stopped row: %q", m)
	}

	ids := strings.Fields(f.ok("ps", "-q"))
	if len(ids) != 2 || !contains(ids, rrec["id"].(string)) || !contains(ids, drec["id"].(string)) {
		t.Errorf("ps -q: %q", ids)
	}

	var recs []map[string]any
	if err := json.Unmarshal([]byte(f.ok("ps", "--format", "json")), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("ps --format json: %v %v", err, recs)
	}
	for _, r := range recs {
		for _, k := range []string{"id", "name", "pid", "command", "createTime", "status", "volume", "portmapping", "networkname"} {
			if _, ok := r[k]; !ok {
				t.Errorf("json record lacks the seed's field %q: %v", k, r)
			}
		}
	}
	if f.ok("ps", "--format", "table") != f.ok("ps") {
		t.Errorf("--format table differs from the default")
	}
	f.fails(125, "ps", "--format", "yaml")

	t.Run("crash: watcher and init killed", func(t *testing.T) {
		f := f.with(t)
		pid, wpid := num(t, rrec, "pid"), num(t, rrec, "watcherPid")
		for _, p := range []int{wpid, pid} {
			if proc, err := os.FindProcess(p); err == nil {
				proc.Kill()
			}
		}
		waitFor(t, "init to die", 5*time.Second, func() bool { return procGone(pid) })
		if rec := f.record(run); rec["status"] != "stopped" {
			t.Errorf("after a crash inspect says %v", rec["status"])
		}
		if !regexp.MustCompile(`(?m)^\d+ +` + regexp.QuoteMeta(run) + ` +- +stopped`).MatchString(f.ok("ps")) {
			t.Errorf("ps after a crash:\n%s", f.ok("ps"))
		}
		// The record on disk still says running: ps reconciled, it did not need the watcher.
		b, _ := os.ReadFile(f.configPath(run))
		if !bytes.Contains(b, []byte(`"status": "running"`)) {
			t.Logf("record on disk: %s", b)
		}
		// stop and rm work on it; stop signals nothing.
		if out := f.ok("stop", run); !strings.Contains(out, "is not running") {
			t.Errorf("stop after a crash: %q", out)
		}
		f.ok("rm", run)
		assertCgroupGone(t, run)
	})

	t.Run("pid reused by another process", func(t *testing.T) {
		f := f.with(t)
		other := sleeper(t)
		f.editRecord(done, map[string]any{"status": "running", "pid": other.Process.Pid})
		if rec := f.record(done); rec["status"] != "stopped" {
			t.Errorf("a record whose pid is another process counts as %v", rec["status"])
		}
		if !regexp.MustCompile(`(?m)` + regexp.QuoteMeta(done) + ` +- +stopped`).MatchString(f.ok("ps")) {
			t.Errorf("ps:\n%s", f.ok("ps"))
		}
		f.ok("stop", "-t", "0", done)
		f.ok("rm", done) // no -f needed: it is not running
		if procGone(other.Process.Pid) {
			t.Errorf("stop/rm signalled the process that reused the PID")
		}
	})
}

// shortestUniquePrefix returns the shortest prefix of id that no other ID starts with.
func shortestUniquePrefix(id string, ids []string) string {
	for n := 1; n < len(id); n++ {
		unique := true
		for _, other := range ids {
			if other != id && strings.HasPrefix(other, id[:n]) {
				unique = false
			}
		}
		if unique {
			return id[:n]
		}
	}
	return id
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNamesAndIDs checks default names, ID-prefix resolution for every command, and that an
// ambiguous prefix is refused.
func TestNamesAndIDs(t *testing.T) {
	f := newFK(t)
	// Without --name the 10-digit ID is the name and the hostname.
	out := f.ok("run", "busybox", "hostname")
	ids := strings.Fields(f.ok("ps", "-q"))
	if len(ids) != 1 || !regexp.MustCompile(`^\d{10}$`).MatchString(ids[0]) || out != ids[0]+"\n" {
		t.Fatalf("unnamed container: hostname %q, ids %q", out, ids)
	}
	if rec := f.record(ids[0]); rec["name"] != ids[0] {
		t.Errorf("unnamed container's name %v, want its ID", rec["name"])
	}

	// Stopped containers until two IDs share a first digit (at most 10 by pigeonhole).
	byDigit := map[byte]string{}
	var a, b string
	for i := 0; i < 10 && a == ""; i++ {
		n := uniq("pfx")
		f.ok("run", "--name", n, "busybox", "true")
		id := f.record(n)["id"].(string)
		if prev, ok := byDigit[id[0]]; ok {
			a, b = prev, n
		}
		byDigit[id[0]] = n
	}
	if a == "" {
		t.Fatal("no two IDs share a first digit")
	}
	ida, idb := f.record(a)["id"].(string), f.record(b)["id"].(string)
	common := 0
	for common < 10 && ida[common] == idb[common] {
		common++
	}
	r := f.fails(125, "inspect", ida[:common])
	if !strings.Contains(r.stderr, "ambiguous") {
		t.Errorf("ambiguous prefix %q: %s", ida[:common], r)
	}
	f.fails(125, "rm", ida[:common])
	if f.record(a)["id"] != ida || f.record(b)["id"] != idb {
		t.Errorf("an ambiguous rm removed something")
	}
	unique := shortestUniquePrefix(ida, strings.Fields(f.ok("ps", "-q")))
	if got := f.record(unique)["name"]; got != a {
		t.Errorf("inspect %s resolved to %v, want %s", unique, got, a)
	}
	f.ok("rm", unique)
	if r := f.run("inspect", a); r.code == 0 {
		t.Errorf("rm by prefix did not remove %s", a)
	}

	// stop and logs by prefix on a running container.
	live := uniq("live")
	rec := f.detach(live, "busybox", "sh", "-c", "echo hello-prefix; sleep 100")
	id := rec["id"].(string)
	prefix := shortestUniquePrefix(id, strings.Fields(f.ok("ps", "-q")))
	if len(prefix) == len(id) {
		t.Fatalf("no unique prefix for %s", id)
	}
	waitFor(t, "the log line", 5*time.Second, func() bool { return strings.Contains(f.ok("logs", prefix), "hello-prefix") })
	if out := f.ok("stop", "-t", "0", prefix); !strings.Contains(out, live) {
		t.Errorf("stop by prefix: %q", out)
	}
	f.ok("rm", prefix)
	assertCgroupGone(t, live)
	if r := f.fails(125, "stop", "99999999999"); !strings.Contains(r.stderr, "no such container") {
		t.Errorf("stop of an unknown ID: %s", r)
	}
}

// TestMessages checks the seed's messages in English and, with a zh locale, in Chinese.
func TestMessages(t *testing.T) {
	f := newFK(t)
	tests := []struct {
		name    string
		env     []string
		chinese bool
	}{
		{"default", nil, false},
		{"LANG zh", []string{"LANG=zh_CN.UTF-8"}, true},
		{"LC_MESSAGES zh", []string{"LC_MESSAGES=zh_CN.UTF-8"}, true},
		{"LC_ALL overrides LANG", []string{"LANG=zh_CN.UTF-8", "LC_ALL=C"}, false},
		{"LC_ALL zh overrides LANG", []string{"LANG=C", "LC_ALL=zh_CN.UTF-8"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := f.with(t)
			g.env = tc.env
			name := uniq("msg")
			started := g.ok("run", "-d", "--name", name, "busybox", "sleep", "100")
			id := g.record(name)["id"].(string)
			stopped := g.ok("stop", "-t", "0", name)
			removed := g.ok("rm", name)
			want := []string{"Container " + name + " started\n", "Container: " + name + ", ID: " + id + ", stopped\n",
				"Container: " + name + ", ID: " + id + ", removed\n"}
			if tc.chinese {
				want = []string{"容器 " + name + " 启动成功\n", "容器: " + name + ", ID: " + id + ", 已进入stopped\n",
					"容器: " + name + ", ID: " + id + ", 已删除\n"}
			}
			if got := []string{started, stopped, removed}; strings.Join(got, "") != strings.Join(want, "") {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
