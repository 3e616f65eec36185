package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// markLayer gives a hand-made layer directory this installation's owner mark, as run does.
func (f *fk) markLayer(dir string) {
	f.t.Helper()
	if err := unix.Setxattr(dir, "trusted.fockker.state", []byte(f.state), 0); err != nil {
		f.t.Fatalf("mark %s: %v", dir, err)
	}
}

// foreignCgroup makes a cgroup under fockker's parent that no record of any installation
// names, as another installation sharing the parent would; it is removed when the test ends.
func foreignCgroup(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup/pids/fockker", uniq("foreign"))
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dir = filepath.Join("/sys/fs/cgroup/fockker", uniq("foreign"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir)) // the shared parent, only if nobody else uses it
	})
	return dir
}

// TestPrune leaves behind what crashes and lost state leave, next to a live container, a
// stopped one and other installations' things, and checks that system prune removes exactly
// the orphans, says so, and that a second prune finds nothing.
func TestPrune(t *testing.T) {
	f := newFK(t)
	keep := uniq("keep")
	keepRec := f.detach(keep, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	done := uniq("done")
	f.fails(3, "run", "--name", done, "busybox", "sh", "-c", "exit 3")
	doneRec := f.record(done)

	// A container whose watcher was killed: its init died too, its record says running.
	dead := uniq("dead")
	deadRec := f.detach(dead, "-p", "8081:80", "busybox", "sleep", "1000")
	// A container whose record was lost: its watcher, container, cgroup, layers, address,
	// veth and port rule remain.
	lost := uniq("lost")
	lostRec := f.detach(lost, "-p", "8082:80", "busybox", "sleep", "1000")
	if err := os.RemoveAll(filepath.Join(f.state, lost)); err != nil {
		t.Fatal(err)
	}
	// Nothing can remove it any more but prune: if prune fails, the test does.
	lostProcs := map[int]uint64{}
	for _, key := range []string{"watcherPid", "pid"} {
		pid := num(t, lostRec, key)
		lostProcs[pid] = startTimeOf(t, pid)
	}
	t.Cleanup(func() {
		for pid, start := range lostProcs {
			if processIs(pid, start) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		for _, dir := range cgroupsOf(lost) {
			for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	kill(t, num(t, deadRec, "watcherPid"))
	waitFor(t, "init to die", 10*time.Second, func() bool { return procGone(num(t, deadRec, "pid")) })

	// Temporary state of killed reservations and removals, a record directory a killed
	// removal emptied, marked layers with a host mount on one, an address held by an ID
	// no record has.
	for _, d := range []string{".new-x-123", ".rm-y-456/sub", "half"} {
		if err := os.MkdirAll(filepath.Join(f.state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	orphan := uniq("orphan")
	for _, sub := range []string{"mnt", "writeLayer", "workLayer"} {
		d := filepath.Join(f.image, sub, orphan)
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		f.markLayer(d)
	}
	mnt := filepath.Join(f.image, "mnt", orphan)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(f.ipamFile("fockker0", "192.168.0.250")), []byte("1111111111"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A first use of an image archive that was killed while unpacking it, and one that is
	// unpacking now (it holds the archive's lock).
	for _, d := range []string{".unpack-gone-123", ".unpack-busy-456"} {
		if err := os.MkdirAll(filepath.Join(f.image, d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	busyTar, err := os.Create(filepath.Join(f.image, "busy.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer busyTar.Close()
	if err := unix.Flock(int(busyTar.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	// Not ours, or not orphans: layers without our mark, a cgroup no record names.
	foreign := filepath.Join(f.image, "writeLayer", uniq("foreign"))
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(foreign) })
	fcg := foreignCgroup(t)

	out := f.ok("system", "prune")
	for _, want := range []string{
		"watcher: pid " + strconv.Itoa(num(t, lostRec, "watcherPid")),
		"container: " + dead,
		"cgroup: fockker/" + done,
		"cgroup: fockker/" + lost,
		"layer: " + filepath.Join(f.image, "writeLayer", lost),
		"layer: " + filepath.Join(f.image, "writeLayer", orphan),
		"mount: " + mnt,
		"state: temporary directory " + filepath.Join(f.state, ".new-x-123"),
		"state: temporary directory " + filepath.Join(f.state, ".rm-y-456"),
		"state: record directory " + filepath.Join(f.state, "half"),
		"network: container " + lostRec["id"].(string) + " on fockker0",
		"network: container 1111111111 on fockker0",
		"image: temporary directory " + filepath.Join(f.image, ".unpack-gone-123"),
	} {
		if !strings.Contains(out, "removed "+want) {
			t.Errorf("prune did not report %q:\n%s", want, out)
		}
	}
	for _, notWant := range []string{keep, keepRec["id"].(string), "foreign", doneRec["id"].(string)} {
		if strings.Contains(out, notWant) {
			t.Errorf("prune touched %s:\n%s", notWant, out)
		}
	}
	if again := f.ok("system", "prune"); again != "nothing to remove\n" {
		t.Errorf("second prune: %q", again)
	}

	// The orphans are gone, from the kernel's view.
	f.assertGone(lost, lostRec["id"].(string))
	f.assertGone(orphan, "")
	// keep's watcher is the only one left.
	if procs := f.processesOf(""); len(procs) != 1 || !strings.HasPrefix(procs[0], strconv.Itoa(num(t, keepRec, "watcherPid"))+" ") {
		t.Errorf("watchers after prune: %v", procs)
	}
	if _, err := os.Stat(f.ipamFile("fockker0", "192.168.0.250")); !os.IsNotExist(err) {
		t.Errorf("orphan address still allocated (%v)", err)
	}
	// The dead container is recorded as stopped, its port free, its address kept until rm.
	if st := f.diskRecord(dead)["status"]; st != "stopped" {
		t.Errorf("dead container's record says %v", st)
	}
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:"+deadRec["id"].(string)) {
		t.Errorf("dead container's port rule left:\n%s", grepLines(s, deadRec["id"].(string)))
	}
	if _, err := os.Stat(f.ipamFile("fockker0", deadRec["ip"].(string))); err != nil {
		t.Errorf("dead container lost its address before rm: %v", err)
	}
	// What is not ours or not an orphan is untouched.
	if _, err := os.Stat(filepath.Join(f.image, ".unpack-busy-456")); err != nil {
		t.Errorf("directory of an unpacking in progress removed: %v", err)
	}
	busyTar.Close()
	if out := f.ok("system", "prune"); out != "removed image: temporary directory "+filepath.Join(f.image, ".unpack-busy-456")+"\n" {
		t.Errorf("prune after the unpacking ended: %q", out)
	}
	os.Remove(filepath.Join(f.image, "busy.tar"))
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("unmarked layer removed: %v", err)
	}
	if _, err := os.Stat(fcg); err != nil {
		t.Errorf("foreign cgroup removed: %v", err)
	}
	if st := f.psStatus(keep); st != "running" {
		t.Errorf("the live container is %q", st)
	}
	f.assertAttached(keepRec, "fockker0", true)
	waitAnswer(t, f.netns, "127.0.0.1", 8080, keep+"\n")
	if st := f.psStatus(done); st != "stopped" {
		t.Errorf("the stopped container is %q", st)
	}
	// Removing the stopped and dead containers still works, and leaves nothing.
	f.ok("rm", done, dead)
	f.assertGone(done, doneRec["id"].(string))
	f.assertGone(dead, deadRec["id"].(string))
}

// TestPruneLazy: ps and run collect cheaply what crashes leave: a crashed container's ports
// are freed for the next run, temporary state goes; nothing of a live container is touched.
// (What only a lost record leaves, such as an address of an unknown ID, is system prune's.)
func TestPruneLazy(t *testing.T) {
	f := newFK(t)
	keep := uniq("keep")
	keepRec := f.detach(keep, "-p", "8090:80", "busybox", "sleep", "1000")
	dead := uniq("dead")
	deadRec := f.detach(dead, "-p", "8080:80", "busybox", "sleep", "1000")
	kill(t, num(t, deadRec, "watcherPid"))
	waitFor(t, "init to die", 10*time.Second, func() bool { return procGone(num(t, deadRec, "pid")) })
	if err := os.MkdirAll(filepath.Join(f.state, ".new-x-123"), 0o755); err != nil {
		t.Fatal(err)
	}

	f.ok("ps") // the installation's first ps: it runs the pass
	if st := f.diskRecord(dead)["status"]; st != "stopped" {
		t.Errorf("after ps the dead container's record says %v", st)
	}
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:"+deadRec["id"].(string)) {
		t.Errorf("after ps the dead container's port rule is left")
	}
	if _, err := os.Stat(filepath.Join(f.state, ".new-x-123")); !os.IsNotExist(err) {
		t.Errorf("after ps the temporary directory is left (%v)", err)
	}
	f.assertAttached(keepRec, "fockker0", true)

	// run frees the ports of a crashed run it needs, even right after ps ran the pass.
	dead2 := uniq("dead")
	p := f.pauseAt("run:network", "run", "-d", "--name", dead2, "-p", "8081:80", "busybox", "sleep", "1000")
	kill(t, p.pid)
	f.ok("ps")
	next := uniq("next")
	f.detach(next, "-p", "8080:80", "busybox", "sleep", "1000")
	next2 := uniq("next")
	f.detach(next2, "-p", "8081:80", "busybox", "sleep", "1000")
	f.ok("rm", "-f", dead, dead2, next, next2)
}

// TestPruneConcurrent: prune never takes anything of runs in progress: it waits for (or
// gives up on) a run stopped halfway, and a prune loop racing with many runs removes nothing
// of theirs.
func TestPruneConcurrent(t *testing.T) {
	f := newFK(t)
	name := uniq("slow")
	p := f.pauseAt("run:network", "run", "-d", "--name", name, "-p", "8080:80", "busybox", "sleep", "1000")
	r := f.fails(125, "system", "prune", "--wait", "200ms")
	if !strings.Contains(r.stderr, "being created") {
		t.Errorf("prune during a run: %s", r)
	}
	f.ok("ps") // its lazy pass gives up at once
	p.resume(t)
	if code := p.wait(t); code != 0 {
		t.Fatalf("the paused run failed (%d): %s", code, p.out.String())
	}
	f.assertAttached(f.record(name), "fockker0", true)

	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = uniq("race")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pruned []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := f.exec("system", "prune", "--wait", "0s")
			if err == nil && r.code == 0 && r.stdout != "nothing to remove\n" {
				pruned = append(pruned, r.stdout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	results, errs := parallel(f, n, func(i int) []string {
		return []string{"run", "-d", "--name", names[i], "busybox", "sleep", "1000"}
	})
	close(stop)
	wg.Wait()
	for i, r := range results {
		if errs[i] != nil || r.code != 0 {
			t.Errorf("run %s: %v %s", names[i], errs[i], r)
		}
	}
	if len(pruned) > 0 {
		t.Errorf("prune removed things of runs in progress: %q", pruned)
	}
	for _, nm := range append(names, name) {
		rec := f.record(nm)
		if rec["status"] != "running" {
			t.Errorf("%s: %v", nm, rec["status"])
			continue
		}
		f.assertAttached(rec, "fockker0", nm == name)
		if cg := cgroupsOf(nm); len(cg) == 0 {
			t.Errorf("%s has no cgroup", nm)
		}
	}
}

// TestPruneSharedParentWithoutState: an installation whose state root was deleted without a
// prune leaves the shared parent cgroup behind, empty; a prune of any installation removes
// it, even one that has no state root yet.
func TestPruneSharedParentWithoutState(t *testing.T) {
	gone := newFK(t)
	gone.ok("run", "--rm", "--net", "none", "busybox", "true")
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/fockker")
	if unified := "/sys/fs/cgroup/fockker"; len(parents) == 0 {
		parents = []string{unified}
	}
	for _, p := range parents {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the parent cgroup %s is not there after a run: %v", p, err)
		}
	}
	if err := os.RemoveAll(gone.state); err != nil {
		t.Fatal(err)
	}
	fresh := newFK(t) // its state root does not exist
	fresh.ok("system", "prune")
	for _, p := range parents {
		sub, _ := filepath.Glob(p + "/*/")
		if _, err := os.Stat(p); err == nil && len(sub) == 0 {
			t.Errorf("the empty parent cgroup %s is still there after a prune", p)
		}
	}
}
