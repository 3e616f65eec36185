package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/network"
	"golang.org/x/sys/unix"
)

func TestStoreReserveIsExclusive(t *testing.T) {
	s := NewStore(t.TempDir())
	const n = 16
	var wg sync.WaitGroup
	wins := make(chan int, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lk, err := s.Reserve(&Record{ID: fmt.Sprint(1000000000 + i), Name: "same"})
			if err != nil {
				errs <- err
				return
			}
			lk.Unlock()
			wins <- i
		}(i)
	}
	wg.Wait()
	close(wins)
	close(errs)
	if len(wins) != 1 {
		t.Fatalf("%d reservations of one name succeeded, want 1", len(wins))
	}
	for err := range errs {
		if !errors.Is(err, ErrNameInUse) {
			t.Errorf("loser got %v, want ErrNameInUse", err)
		}
	}
	ents, _ := os.ReadDir(s.root)
	if len(ents) != 1 || ents[0].Name() != "same" {
		t.Fatalf("state root holds %v, want only same/ (losers must leave nothing)", ents)
	}
}

func TestStoreUpdateListResolve(t *testing.T) {
	s := NewStore(t.TempDir())
	for i, name := range []string{"alpha", "beta", "1234567890"} {
		lk, err := s.Reserve(&Record{ID: fmt.Sprintf("12345%05d", i), Name: name, CreateTime: fmt.Sprint(i), Status: Created})
		if err != nil {
			t.Fatal(err)
		}
		lk.Unlock()
	}
	if _, err := s.Update("beta", func(r *Record) error { r.Status = Stopped; return nil }); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Load("beta")
	if err != nil || rec.Status != Stopped {
		t.Fatalf("Load after Update: %+v, %v", rec, err)
	}
	recs, err := s.List()
	if err != nil || len(recs) != 3 || recs[0].Name != "alpha" || recs[2].Name != "1234567890" {
		t.Fatalf("List: %v, %v", recs, err)
	}
	for ref, want := range map[string]string{
		"alpha": "alpha", "1234500001": "beta", "1234500000": "alpha", "123450000": "", // ambiguous
		"1234500002": "1234567890", "1234567890": "1234567890", "nope": "", "../x": "", "": "",
	} {
		got, err := s.Resolve(ref)
		if want == "" {
			if err == nil {
				t.Errorf("Resolve(%q) = %q, want an error", ref, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := s.Resolve("123450000"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	// An update that fails changes nothing on disk.
	boom := errors.New("boom")
	if _, err := s.Update("alpha", func(r *Record) error { r.Status = Running; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if rec, _ := s.Load("alpha"); rec.Status != Created {
		t.Errorf("failed update was saved: %s", rec.Status)
	}
	if _, err := s.Update("ghost", func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of a missing container: %v", err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Errorf("second Delete: %v (teardown must be idempotent)", err)
	}
	if _, err := s.Lock("alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of a deleted container: %v", err)
	}
}

// LoadKnown hands back the caller's own record only while the file is exactly what that
// record encodes to: any other writer's change, or another container under the name, is read
// from the file.
func TestLoadKnown(t *testing.T) {
	s := NewStore(t.TempDir())
	mine := &Record{ID: "1234500000", Name: "alpha", CreateTime: "t0", Status: Created, Command: []string{"true"}}
	lk, err := s.Reserve(mine)
	if err != nil {
		t.Fatal(err)
	}
	mine.Status, mine.Pid = Running, 42
	if err := s.Save(mine); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if got, err := s.LoadKnown("alpha", mine); err != nil || got != mine {
		t.Fatalf("unchanged record: got %p (%v), want the caller's %p", got, err, mine)
	}
	// Changed in memory only: the file no longer matches, and what is on disk is returned.
	mine.Pid = 43
	got, err := s.LoadKnown("alpha", mine)
	if err != nil || got == mine || got.Pid != 42 {
		t.Fatalf("record changed in memory: got %+v, %v; want the file's (pid 42)", got, err)
	}
	mine.Pid = 42
	// Changed by another writer.
	if _, err := s.Update("alpha", func(r *Record) error { r.Status = Stopped; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadKnown("alpha", mine); err != nil || got == mine || got.Status != Stopped {
		t.Fatalf("record changed by another writer: got %+v, %v", got, err)
	}
	// Replaced by another container under the same name.
	if err := s.Delete("alpha"); err != nil {
		t.Fatal(err)
	}
	other := &Record{ID: "9999900000", Name: "alpha", CreateTime: "t1", Status: Created, Command: []string{"true"}}
	lk, err = s.Reserve(other)
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if got, err := s.LoadKnown("alpha", mine); err != nil || got.ID != other.ID {
		t.Fatalf("record replaced: got %+v, %v; want ID %s", got, err, other.ID)
	}
	// A record of another name is never taken for this one, even with the same bytes.
	if got, err := s.LoadKnown("alpha", &Record{ID: other.ID, Name: "beta", CreateTime: "t1", Status: Created, Command: []string{"true"}}); err != nil || got.Name != "alpha" {
		t.Fatalf("known record of another name: got %+v, %v", got, err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadKnown("alpha", mine); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
}

func TestLockSeesRemoval(t *testing.T) {
	s := NewStore(t.TempDir())
	lk, err := s.Reserve(&Record{ID: "1111111111", Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := s.Lock("x") // blocks until the remover is done
		l2.Unlock()
		got <- err
	}()
	if err := s.Delete("x"); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if err := <-got; !errors.Is(err, ErrNotFound) {
		t.Fatalf("a waiter on a removed container got %v, want ErrNotFound", err)
	}
}

func TestWriteRecordLeavesNoTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := writeRecord(dir, &Record{ID: fmt.Sprint(1000000000 + i), Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != configName {
		t.Fatalf("dir holds %v, want only %s", ents, configName)
	}
	rec, err := NewStore(filepath.Dir(dir)).Load(filepath.Base(dir))
	if err != nil || rec.ID != "1000000002" {
		t.Fatalf("record %+v, %v", rec, err)
	}
}

// writeRaw puts content where the record of name would be, as a crash can leave it.
func writeRaw(t *testing.T, s *Store, name string, content []byte, mode os.FileMode) {
	t.Helper()
	dir := filepath.Join(s.root, name)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, configName), content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, configName), mode); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedRecords: what a crash of the machine can leave of a record being written (an
// empty file, zeros, a cut), and records that are not this name's, read as damaged: listed,
// resolvable, not running, never rewritten.
func TestDamagedRecords(t *testing.T) {
	s := NewStore(t.TempDir())
	good, _ := json.MarshalIndent(&Record{ID: "1234567890", Name: "cut", Status: Running, Command: []string{"sleep", "1"}}, "", "  ")
	other, _ := json.Marshal(&Record{ID: "2222222222", Name: "someone-else"})
	for name, content := range map[string][]byte{
		"empty": {}, "zeros": make([]byte, 949), "cut": good[:len(good)/2], "null": []byte("null\n"),
		"object": []byte("{}"), "array": []byte("[1]"), "other": other,
	} {
		writeRaw(t, s, name, content, 0o600)
		rec, err := s.Load(name)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		if rec.Status != Damaged || rec.Name != name || rec.ID != "" || rec.Spec.CgroupParent != DefaultCgroupParent ||
			rec.Spec.bridged() || rec.CreateTime == "" {
			t.Errorf("%s: Load = %+v", name, rec)
		}
		if st := State(rec); st != Stopped {
			t.Errorf("%s: State = %s, want stopped (nothing of it is known to run)", name, st)
		}
		if st := s.state(rec); st != Damaged {
			t.Errorf("%s: ps shows %s, want damaged", name, st)
		}
		if got, err := s.Resolve(name); err != nil || got != name {
			t.Errorf("%s: Resolve = %q, %v", name, got, err)
		}
		called := false
		if _, err := s.Update(name, func(r *Record) error { called = true; r.Status = Stopped; return nil }); err != nil || called {
			t.Errorf("%s: Update: %v, fn called: %v", name, err, called)
		}
		if b, _ := os.ReadFile(filepath.Join(s.root, name, configName)); !bytes.Equal(b, content) {
			t.Errorf("%s: rewritten as %q", name, b)
		}
		if err := s.Save(rec); err == nil {
			t.Errorf("%s: a damaged record was saved", name)
		}
	}
	recs, err := s.List()
	if err != nil || len(recs) != 7 {
		t.Fatalf("List: %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if r.Status != Damaged {
			t.Errorf("List: %s is %s", r.Name, r.Status)
		}
	}
}

// TestRecordModes: a stopped record is final and written read-only; rewriting it works.
func TestRecordModes(t *testing.T) {
	s := NewStore(t.TempDir())
	lk, err := s.Reserve(&Record{ID: "1111111111", Name: "m", Status: Created})
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	mode := func() os.FileMode {
		fi, err := os.Stat(filepath.Join(s.root, "m", configName))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(); m != recordMode {
		t.Errorf("created: %v", m)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Update("m", func(r *Record) error { r.Status = Stopped; r.Pid = i; return nil }); err != nil {
			t.Fatal(err)
		}
		if m := mode(); m != stoppedRecordMode {
			t.Errorf("stopped: %v", m)
		}
	}
	if rec, err := s.Load("m"); err != nil || rec.Pid != 1 {
		t.Errorf("after rewriting a read-only record: %+v, %v", rec, err)
	}
	ents, err := readDir(s.root)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.scan(ents)
	if err != nil || len(entries) != 1 || !entries[0].final || entries[0].missing {
		t.Errorf("scan: %+v, %v", entries, err)
	}
}

// TestPruneDamaged: the collector's cheap pass removes damaged records that nobody holds,
// reads no final record (a read-only one it cannot read is left for the full pass), and
// leaves a damaged record someone holds.
func TestPruneDamaged(t *testing.T) {
	dir := t.TempDir()
	roots := Roots{State: filepath.Join(dir, "state"), Image: filepath.Join(dir, "image")}
	s := NewStore(roots.State)
	writeRaw(t, s, "crashed", nil, 0o600)
	writeRaw(t, s, "held", []byte{0, 0, 0}, 0o600)
	writeRaw(t, s, "final", []byte("not json"), 0o400) // the cheap pass must not read it
	lk, err := s.Reserve(&Record{ID: "1111111111", Name: "ok", Status: Stopped})
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if err := os.MkdirAll(filepath.Join(roots.State, "half"), 0o711); err != nil { // no config.json
		t.Fatal(err)
	}
	held, err := s.Lock("held")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Prune(roots, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"state: record directory " + filepath.Join(roots.State, "half") + " without a record",
		"state: damaged record " + filepath.Join(roots.State, "crashed", configName),
	}
	if len(out) != len(want) {
		t.Fatalf("cheap pass: %v, want %v", out, want)
	}
	for i := range want {
		if out[i].String() != want[i] {
			t.Errorf("cheap pass reported %q, want %q", out[i], want[i])
		}
	}
	names := func() string {
		recs, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, r := range recs {
			n = append(n, r.Name+"="+string(r.Status))
		}
		sort.Strings(n)
		return strings.Join(n, " ")
	}
	if got := names(); got != "final=damaged held=damaged ok=stopped" {
		t.Errorf("after the cheap pass: %s", got)
	}
	// The full pass reads every record; the held one stays while it is held.
	out, err = Prune(roots, PruneOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].String() != "state: damaged record "+filepath.Join(roots.State, "final", configName) {
		t.Errorf("full pass: %v", out)
	}
	held.Unlock()
	if _, err := Prune(roots, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "ok=stopped" {
		t.Errorf("at the end: %s", got)
	}
}

// TestDamagedRecordResidue, on the real kernel: a damaged record whose cgroup still holds a
// process is left, with its layers and cgroup, by both passes of the collector; once the
// process is gone, the cheap pass removes the record, its cgroup and its layers. rm removes
// another one with its residue at once.
func TestDamagedRecordResidue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: cgroups and the trusted.* mark of layer directories")
	}
	dir := t.TempDir()
	roots := Roots{State: filepath.Join(dir, "state"), Image: filepath.Join(dir, "image")}
	s := NewStore(roots.State)
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	busyName, rmName := "dmg-busy-"+id, "dmg-rm-"+id
	cgs := map[string]*cgroup.Cgroup{}
	for _, name := range []string{busyName, rmName} {
		writeRaw(t, s, name, nil, 0o600)
		if err := createLayers(roots, name); err != nil {
			t.Fatal(err)
		}
		cg, err := cgroup.New(DefaultCgroupParent, name, cgroup.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := cg.Create(); err != nil {
			t.Fatal(err)
		}
		cgs[name] = cg
		t.Cleanup(func() { cg.Destroy() })
	}
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	if err := cgs[busyName].Add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	layersOf := func(name string) int {
		n := 0
		for _, d := range []string{roots.UpperDir(name), roots.WorkDir(name)} {
			if _, err := os.Stat(d); err == nil {
				n++
			}
		}
		return n
	}

	if err := Remove(roots, rmName, true); err != nil {
		t.Fatalf("rm -f of a damaged record: %v", err)
	}
	if _, err := s.Load(rmName); !errors.Is(err, ErrNotFound) || layersOf(rmName) != 0 || cgs[rmName].Exists() {
		t.Errorf("after rm: record %v, %d layer dirs, cgroup exists %v", err, layersOf(rmName), cgs[rmName].Exists())
	}

	for _, full := range []bool{false, true} {
		out, err := Prune(roots, PruneOptions{Full: full})
		if err != nil || len(out) != 0 {
			t.Errorf("prune (full %v) with a process in the damaged record's cgroup: %v, %v", full, out, err)
		}
	}
	if rec, err := s.Load(busyName); err != nil || rec.Status != Damaged || layersOf(busyName) != 2 || !cgs[busyName].Exists() {
		t.Fatalf("busy damaged record: %+v, %v; %d layer dirs; cgroup exists %v", rec, err, layersOf(busyName), cgs[busyName].Exists())
	}

	sleeper.Process.Kill()
	sleeper.Wait()
	out, err := Prune(roots, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out {
		got = append(got, p.String())
	}
	for _, want := range []string{
		"state: damaged record " + filepath.Join(roots.State, busyName, configName),
		"cgroup: " + DefaultCgroupParent + "/" + busyName,
		"layer: " + roots.UpperDir(busyName),
		"layer: " + roots.WorkDir(busyName),
	} {
		if !slices.Contains(got, want) {
			t.Errorf("cheap pass did not report %q: %v", want, got)
		}
	}
	if _, err := s.Load(busyName); !errors.Is(err, ErrNotFound) || layersOf(busyName) != 0 || cgs[busyName].Exists() {
		t.Errorf("after the process ended: record %v, %d layer dirs, cgroup exists %v", err, layersOf(busyName), cgs[busyName].Exists())
	}
}

// benchInstall makes an installation of n stopped containers, with their layers.
func benchInstall(b *testing.B, n int) Roots {
	dir := b.TempDir()
	r := Roots{State: filepath.Join(dir, "state"), Image: filepath.Join(dir, "image")}
	s := NewStore(r.State)
	for i := 0; i < n; i++ {
		code := 0
		rec := &Record{ID: fmt.Sprintf("%010d", i), Name: fmt.Sprintf("c%d", i), Status: Stopped, ExitCode: &code,
			Command: []string{"true"}, CreateTime: "2026-11-27 22:50:12", Volume: []string{}, PortMapping: []string{}, NetworkName: "none",
			Spec: Spec{Name: fmt.Sprintf("c%d", i), Image: "busybox", Args: []string{"true"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=x"}, CgroupParent: "fockker", Network: "none"}}
		lk, err := s.Reserve(rec)
		if err != nil {
			b.Fatal(err)
		}
		lk.Unlock()
		for _, d := range []string{r.UpperDir(rec.Name), r.WorkDir(rec.Name)} {
			os.MkdirAll(d, 0o755)
			markLayer(d, r.State)
		}
	}
	return r
}

// BenchmarkPruneLazy1000 is the cheap pass every run makes, with 1,000 stopped containers.
func BenchmarkPruneLazy1000(b *testing.B) {
	r := benchInstall(b, 1000)
	b.ResetTimer()
	for b.Loop() {
		if err := PruneLazily(r, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPruneForRun: a run frees the name it asks for of a crash's leftovers (a record
// directory without a readable record, the name's orphan layers), and, when it publishes
// ports, settles containers that died unrecorded; it touches nothing else, and a run with
// neither reads nothing.
func TestPruneForRun(t *testing.T) {
	dir := t.TempDir()
	roots := Roots{State: filepath.Join(dir, "state"), Image: filepath.Join(dir, "image")}
	s := NewStore(roots.State)
	root := os.Geteuid() == 0 // layers carry a trusted.* mark
	for _, name := range []string{"emptied", "other"} {
		if err := os.MkdirAll(filepath.Join(roots.State, name), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	writeRaw(t, s, "damaged", []byte("{\"id\": \"12"), 0o600)
	lk, err := s.Reserve(&Record{ID: "1111111111", Name: "dead", Status: Running, Pid: 1 << 30, StartTime: 1})
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	lk, err = s.Reserve(&Record{ID: "2222222222", Name: "taken", Status: Stopped})
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if root {
		for _, name := range []string{"lost", "taken"} {
			if err := createLayers(roots, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	status := func(name string) Status {
		rec, err := s.Load(name)
		if err != nil {
			return "gone"
		}
		return rec.Status
	}

	if err := PruneForRun(roots, Spec{}); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(roots.State, "emptied")) || status("damaged") != Damaged || status("dead") != Running {
		t.Fatal("a run without a name or ports freed something")
	}
	for _, name := range []string{"emptied", "damaged", "taken", "lost"} {
		if err := PruneForRun(roots, Spec{Name: name}); err != nil {
			t.Fatalf("--name %s: %v", name, err)
		}
	}
	if exists(filepath.Join(roots.State, "emptied")) || status("damaged") != "gone" {
		t.Error("the names asked for are still held by a crash's leftovers")
	}
	if !exists(filepath.Join(roots.State, "other")) || status("taken") != Stopped || status("dead") != Running {
		t.Error("names not asked for, or held by a record, were freed")
	}
	if root && (exists(roots.UpperDir("lost")) || !exists(roots.UpperDir("taken"))) {
		t.Errorf("layers: lost's left %v, taken's kept %v", exists(roots.UpperDir("lost")), exists(roots.UpperDir("taken")))
	}
	if err := PruneForRun(roots, Spec{Ports: []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	if status("dead") != Stopped || !exists(filepath.Join(roots.State, "other")) {
		t.Errorf("a run with ports: dead is %s, other exists %v", status("dead"), exists(filepath.Join(roots.State, "other")))
	}
}

// TestStoreSpareDirectory: a removal leaves its emptied directory as the state root's spare
// (one at most), and the next reservation takes it instead of making a directory.
func TestStoreSpareDirectory(t *testing.T) {
	s := NewStore(t.TempDir())
	spare := filepath.Join(s.root, spareName)
	ino := func(p string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	for _, name := range []string{"a", "b"} {
		lk, err := s.Reserve(&Record{ID: "1000000001", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		lk.Unlock()
	}
	if err := os.WriteFile(filepath.Join(s.root, "a", logName), []byte("log"), 0o600); err != nil {
		t.Fatal(err)
	}
	aIno := ino(filepath.Join(s.root, "a"))
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(spare); err != nil || len(ents) != 0 || ino(spare) != aIno {
		t.Fatalf("spare after rm of a: %v, %v", ents, err)
	}
	if err := s.Delete("b"); err != nil { // a spare exists: b's directory goes
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.root)
	if len(ents) != 1 || ents[0].Name() != spareName || ino(spare) != aIno {
		t.Fatalf("state root holds %v, want only the spare", ents)
	}
	lk, err := s.Reserve(&Record{ID: "1000000003", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if ino(filepath.Join(s.root, "c")) != aIno {
		t.Error("the reservation made a directory instead of taking the spare")
	}
	if fi, err := os.Stat(filepath.Join(s.root, "c")); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("reused directory mode %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spare still there after it was taken: %v", err)
	}
	if recs, err := s.List(); err != nil || len(recs) != 1 || recs[0].Name != "c" {
		t.Errorf("list %v, %v", recs, err)
	}
}

// TestPruneRemovesSpare: system prune removes the spare record directory.
func TestPruneRemovesSpare(t *testing.T) {
	roots := Roots{State: t.TempDir(), Image: t.TempDir()}
	s := NewStore(roots.State)
	lk, err := s.Reserve(&Record{ID: "1000000001", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if _, err := os.Stat(filepath.Join(roots.State, spareName)); err != nil {
		t.Fatalf("no spare after rm: %v", err)
	}
	if _, err := Prune(roots, PruneOptions{Full: true}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(roots.State); len(ents) != 0 {
		t.Errorf("state root holds %v after prune", ents)
	}
}
