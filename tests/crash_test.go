package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Crash safety: fockker's test hook (FOCKKER_TEST_PAUSE=<step> with FOCKKER_TEST_PAUSE_NOTIFY,
// see container/testhook.go) stops run, stop or rm at a named step; the test SIGKILLs the CLI,
// the watcher or the container there, and then checks that ps tells what the kernel says, that
// no record is half-written, and that rm -f leaves nothing at all.

// paused is a fockker command stopped by the test hook.
type paused struct {
	cmd    *exec.Cmd     // the CLI
	done   chan struct{} // closed when the CLI has exited
	out    bytes.Buffer  // its stdout and stderr
	notify string        // the hook's file; removing it lets the process go on
	pid    int           // the stopped process: the CLI, or the watcher of run -d
}

// pauseAt starts fockker with args, stopping at step, and waits until it is stopped there.
func (f *fk) pauseAt(step string, args ...string) *paused {
	f.t.Helper()
	p := &paused{notify: filepath.Join(f.t.TempDir(), "paused"), done: make(chan struct{})}
	p.cmd = f.nsCommand(args...)
	p.cmd.Env = append(p.cmd.Env, "FOCKKER_TEST_PAUSE="+step, "FOCKKER_TEST_PAUSE_NOTIFY="+p.notify)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	f.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(p.notify); err == nil {
			fs := strings.Fields(string(b))
			if len(fs) != 2 || fs[1] != step {
				f.t.Fatalf("hook file %q", b)
			}
			p.pid, _ = strconv.Atoi(fs[0])
			return p
		}
		select {
		case <-p.done:
			f.t.Fatalf("fockker %q ended before reaching %s: %s: %s", args, step, p.cmd.ProcessState, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("fockker %q never reached %s: %s", args, step, p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resume lets the stopped process go on.
func (p *paused) resume(t *testing.T) {
	t.Helper()
	if err := os.Remove(p.notify); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the CLI to exit and returns its exit code (-1 when killed by a signal).
func (p *paused) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("fockker did not exit: %s", p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func kill(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("kill: pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		t.Fatalf("kill %d: %v", pid, err)
	}
	// Gone, and every thread with it: a zombie leader may still share its descriptors with
	// threads that are exiting, and a pipe it reads would still have a reader.
	waitFor(t, fmt.Sprintf("pid %d to die", pid), 10*time.Second, func() bool {
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		return procGone(pid) && len(tasks) <= 1
	})
}

// diskRecord reads a container's config.json straight from disk; nil when there is none. A
// record that does not parse fails the test: no record is ever half-written.
func (f *fk) diskRecord(name string) map[string]any {
	f.t.Helper()
	b, err := os.ReadFile(f.configPath(name))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatalf("%s does not parse: %v\n%s", f.configPath(name), err, b)
	}
	if rec["name"] != name {
		f.t.Fatalf("%s names %v", f.configPath(name), rec["name"])
	}
	return rec
}

// intField reads a number of a record; 0 when absent.
func intField(rec map[string]any, key string) int {
	v, _ := rec[key].(float64)
	return int(v)
}

// processIs reports whether pid is alive and still the process that started at start.
func processIs(pid int, start uint64) bool {
	if pid <= 0 || procGone(pid) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fs := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	st, err := strconv.ParseUint(fs[19], 10, 64)
	return err == nil && st == start
}

// psStatus returns the status ps gives a container ("" when ps does not list it) and checks
// it against the kernel: running or created while its recorded init lives, stopped after.
func (f *fk) psStatus(name string) string {
	f.t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal([]byte(f.ok("ps", "--format", "json")), &recs); err != nil {
		f.t.Fatal(err)
	}
	for _, r := range recs {
		if r["name"] != name {
			continue
		}
		st, _ := r["status"].(string)
		alive := processIs(intField(r, "pid"), uint64(intField(r, "startTime")))
		if st == "created" && intField(r, "pid") == 0 {
			return st // its creator is at work and has not cloned its init yet
		}
		if alive != (st == "running" || st == "created") {
			f.t.Errorf("ps says %s is %s, but its init %v alive=%v", name, st, r["pid"], alive)
		}
		return st
	}
	return ""
}

// assertGone checks from the kernel's view that nothing of container name (ID id) is left:
// record, layers, cgroups, processes, veth, port rules, address, endpoint, mounts, and no
// temporary state or watcher of this installation.
func (f *fk) assertGone(name, id string) {
	f.t.Helper()
	if _, err := os.Lstat(filepath.Join(f.state, name)); !os.IsNotExist(err) {
		f.t.Errorf("%s: state directory left (%v)", name, err)
	}
	ents, _ := os.ReadDir(f.state)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".new-") || strings.HasPrefix(e.Name(), ".rm-") {
			f.t.Errorf("temporary state left: %s", e.Name())
		}
	}
	for _, sub := range []string{"mnt", "writeLayer", "workLayer"} {
		if _, err := os.Lstat(filepath.Join(f.image, sub, name)); !os.IsNotExist(err) {
			f.t.Errorf("%s: %s layer left (%v)", name, sub, err)
		}
	}
	if cg := cgroupsOf(name); len(cg) > 0 {
		f.t.Errorf("%s: cgroups left: %v", name, cg)
	}
	if m := hostMounts(f.t, f.image); m != "" {
		f.t.Errorf("mounts left:\n%s", m)
	}
	if procs := f.processesOf(name); len(procs) > 0 {
		f.t.Errorf("%s: processes left: %v", name, procs)
	}
	if id == "" {
		return
	}
	if f.links()[hostVeth(id)] {
		f.t.Errorf("%s: %s left", name, hostVeth(id))
	}
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:"+id) {
		f.t.Errorf("%s: port rules left:\n%s", name, grepLines(s, id))
	}
	if held := f.heldBy(id); len(held) > 0 {
		f.t.Errorf("%s: network state left: %v", name, held)
	}
}

// heldBy lists the IPAM files and stored endpoints of any network that belong to id.
func (f *fk) heldBy(id string) []string {
	var out []string
	nets, _ := os.ReadDir(filepath.Join(f.state, "network"))
	for _, n := range nets {
		dir := filepath.Join(f.state, "network", n.Name())
		if _, err := os.Stat(filepath.Join(dir, "endpoints", id+".json")); err == nil {
			out = append(out, filepath.Join(dir, "endpoints", id+".json"))
		}
		ips, _ := os.ReadDir(filepath.Join(dir, "ipam"))
		for _, ip := range ips {
			if b, err := os.ReadFile(filepath.Join(dir, "ipam", ip.Name())); err == nil && strings.TrimSpace(string(b)) == id {
				out = append(out, filepath.Join(dir, "ipam", ip.Name()))
			}
		}
	}
	return out
}

// processesOf lists the processes in a container's cgroup (by the cgroup paths in
// /proc/<pid>/cgroup) and, with name "", every watcher of this installation.
func (f *fk) processesOf(name string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		if name != "" {
			cg, _ := os.ReadFile(dir + "/cgroup")
			if bytes.Contains(cg, []byte("/fockker/"+name+"\n")) && !procGone(pid) {
				out = append(out, e.Name())
			}
			continue
		}
		cmd, _ := os.ReadFile(dir + "/cmdline")
		env, _ := os.ReadFile(dir + "/environ")
		if bytes.HasPrefix(cmd, []byte("fockker\x00")) && bytes.Contains(env, []byte("_FOCKKER_WATCH_ROOT="+f.state+"\x00")) && !procGone(pid) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// assertNoWatchers checks that no watcher of this installation outlives its container. A
// watcher whose container rm -f killed still records the exit (and finds the record gone):
// it gets a few seconds for that.
func (f *fk) assertNoWatchers() {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := f.processesOf("")
		if len(w) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Errorf("watchers left: %v", w)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeAll removes a container with rm -f (if ps still lists it) and checks nothing is left.
func (f *fk) removeAll(name, id string) {
	f.t.Helper()
	if f.psStatus(name) != "" {
		if r := f.run("rm", "-f", name); r.code != 0 {
			f.t.Fatalf("rm -f %s: %s", name, r)
		}
	}
	if r := f.run("rm", "-f", name); r.code != 125 || !strings.Contains(r.stderr, "no such container") {
		f.t.Errorf("second rm -f %s: %s", name, r)
	}
	f.assertGone(name, id)
}

// runSteps are the steps of run, in order; the container's init exists from "run:init" on.
var runSteps = []string{"run:reserve", "run:layers", "run:init", "run:cgroup", "run:network", "run:before-start", "run:started"}

func hasInit(step string) bool {
	for _, s := range runSteps[2:] {
		if s == step {
			return true
		}
	}
	return false
}

// TestCrashRun stops run (attached and detached) at each step and kills, there: the process
// that creates the container (CLI or watcher), the CLI waiting for a watcher, or the container.
func TestCrashRun(t *testing.T) {
	if shared.skipWhy != "" {
		t.Skip(shared.skipWhy)
	}
	type crashCase struct {
		step   string
		detach bool
		kill   string // creator, cli (detached: the CLI waiting for its watcher), container
		early  bool   // no volume: the user is known from the image, the command is sent early
	}
	var cases []crashCase
	for _, step := range runSteps {
		cases = append(cases, crashCase{step, false, "creator", false}, crashCase{step, true, "creator", false}, crashCase{step, true, "cli", false})
		if hasInit(step) {
			cases = append(cases, crashCase{step, false, "container", false}, crashCase{step, true, "container", false})
		}
	}
	// Without a volume Create sends the command before the root is built (run:before-start
	// comes before the init reports ready): the same outcomes.
	for _, step := range []string{"run:network", "run:before-start"} {
		cases = append(cases, crashCase{step, false, "creator", true}, crashCase{step, false, "container", true}, crashCase{step, true, "container", true})
	}
	if testing.Short() {
		cases = []crashCase{{"run:reserve", false, "creator", false}, {"run:network", true, "creator", false}, {"run:init", true, "container", false}, {"run:started", false, "creator", false}}
	}
	for _, tc := range cases {
		mode := "attached"
		if tc.detach {
			mode = "detached"
		}
		if tc.early {
			mode += "-early"
		}
		t.Run(fmt.Sprintf("%s/%s/kill-%s", tc.step, mode, tc.kill), func(t *testing.T) {
			t.Parallel()
			f := newFK(t)
			name := uniq("crash")
			args := []string{"run", "--name", name, "-p", "8080:80"}
			if !tc.early {
				args = append(args, "-v", t.TempDir()+":/data")
			}
			if tc.detach {
				args = append(args, "-d")
			}
			p := f.pauseAt(tc.step, append(args, "busybox", "sleep", "1000")...)
			rec := f.diskRecord(name)
			if rec == nil {
				t.Fatalf("no record at %s", tc.step)
			}
			id, _ := rec["id"].(string)
			initPid := intField(rec, "pid")
			if hasInit(tc.step) != (initPid > 0) {
				t.Errorf("at %s the record's pid is %d", tc.step, initPid)
			}
			if tc.detach && intField(rec, "watcherPid") != p.pid {
				t.Errorf("the record names watcher %v, the paused watcher is %d", rec["watcherPid"], p.pid)
			}
			// While it is stopped there, ps tells the truth too (a run in progress holds
			// the installation's lock, so nothing is collected under it).
			if st := f.psStatus(name); (tc.step == "run:started") != (st == "running") || (tc.step != "run:started") != (st == "created") {
				t.Errorf("at %s ps says %q", tc.step, st)
			}

			want := "stopped" // what ps must say once the dust settled; "" for no record
			switch tc.kill {
			case "creator":
				kill(t, p.pid)
				if initPid > 0 {
					// The container dies with its creator (parent-death signal).
					waitFor(t, "init to die with its creator", 10*time.Second, func() bool { return procGone(initPid) })
				}
				if code := p.wait(t); tc.detach && code != 125 {
					t.Errorf("run -d exited %d when its watcher was killed: %s", code, p.out.String())
				}
			case "cli":
				kill(t, p.cmd.Process.Pid)
				p.resume(t)
				want = "running"
				f.waitStatus(name, "running", 30*time.Second)
			case "container":
				kill(t, initPid)
				p.resume(t)
				code := p.wait(t)
				if tc.step == "run:started" {
					if !tc.detach && code != 137 {
						t.Errorf("attached run exited %d, want 137: %s", code, p.out.String())
					}
					f.waitStatus(name, "stopped", 30*time.Second)
				} else {
					// Its creator finds it dead and rolls everything back.
					want = ""
					if code != 125 {
						t.Errorf("run exited %d, want 125: %s", code, p.out.String())
					}
				}
			}
			f.diskRecord(name) // parses, if it exists
			if st := f.psStatus(name); st != want {
				t.Errorf("after the kill ps says %q, want %q", st, want)
			}
			if want == "" {
				f.assertGone(name, id)
			}
			// The port is free again for a new container once the old one is dead.
			if want == "stopped" {
				other := uniq("after")
				if r := f.run("run", "-d", "--name", other, "-p", "8080:80", "busybox", "sleep", "100"); r.code != 0 {
					t.Errorf("port of the dead container still taken: %s", r)
				}
				f.ok("rm", "-f", other)
			}
			f.removeAll(name, id)
			f.assertNoWatchers()
		})
	}
}

// TestCrashStopRm stops `stop` and `rm` at each step and kills them (and for stop, the
// watcher too): ps tells the truth, the record parses, and rm -f finishes the job.
func TestCrashStopRm(t *testing.T) {
	if shared.skipWhy != "" {
		t.Skip(shared.skipWhy)
	}
	cases := []struct {
		step        string
		cmd         []string // after the container's name is appended
		killWatcher bool
		want        string // ps status after the kill; "container": the container is killed instead
	}{
		// busybox sleep as PID 1 ignores SIGTERM: a killed stop leaves it running.
		{"stop:signalled", []string{"stop", "-t", "30"}, false, "running"},
		{"stop:signalled", []string{"stop", "-t", "30"}, true, "stopped"},
		{"stop:exited", []string{"stop", "-t", "0"}, false, "stopped"},
		{"stop:exited", []string{"stop", "-t", "0"}, true, "stopped"},
		// The container is killed while stop waits: stop goes on and reports it stopped.
		{"stop:signalled", []string{"stop", "-t", "30"}, false, "container"},
		{"rm:killed", []string{"rm", "-f"}, false, "stopped"},
		{"rm:released", []string{"rm", "-f"}, false, "stopped"},
	}
	if testing.Short() {
		cases = cases[1:2]
	}
	for _, tc := range cases {
		victim := "cli"
		switch {
		case tc.want == "container":
			victim = "container"
		case tc.killWatcher:
			victim = "cli+watcher"
		}
		t.Run(tc.step+"/kill-"+victim, func(t *testing.T) {
			t.Parallel()
			f := newFK(t)
			name := uniq("crash")
			rec := f.detach(name, "-p", "8080:80", "busybox", "sleep", "1000")
			id := rec["id"].(string)
			p := f.pauseAt(tc.step, append(tc.cmd, name)...)
			f.diskRecord(name)
			if tc.want == "container" {
				kill(t, num(t, rec, "pid"))
				p.resume(t)
				if code := p.wait(t); code != 0 || !strings.Contains(p.out.String(), "stopped") {
					t.Errorf("stop after its container was killed: exit %d: %s", code, p.out.String())
				}
				if st := f.psStatus(name); st != "stopped" {
					t.Errorf("ps says %q", st)
				}
				f.removeAll(name, id)
				return
			}
			kill(t, p.pid)
			if tc.killWatcher {
				kill(t, num(t, rec, "watcherPid"))
			}
			if tc.want == "stopped" {
				waitFor(t, "init to die", 10*time.Second, func() bool { return procGone(num(t, rec, "pid")) })
			}
			f.diskRecord(name)
			if st := f.psStatus(name); st != tc.want {
				t.Errorf("ps says %q, want %q", st, tc.want)
			}
			f.removeAll(name, id)
			f.assertNoWatchers()
		})
	}
}
