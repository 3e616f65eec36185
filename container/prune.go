package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/mountinfo"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/network"
	"golang.org/x/sys/unix"
)

// The garbage collector (`fockker system prune`, and a cheaper pass run by ps, and the part
// of it a run needs) removes what crashes leave behind, and only what is provably this
// installation's and no longer in use:
//
//   - temporary state directories (.new-* of a reservation, .rm-* of a removal), record
//     directories without their config.json, and damaged records (a config.json a crash of
//     the machine left unreadable, see Store) once no process is left in their cgroup;
//   - containers whose record says created or running but whose init is gone (its creator or
//     watcher was killed): the record is settled as stopped, its published ports are freed
//     and its cgroup removed; its address stays until rm, as for any stopped container;
//   - layer directories (mnt, writeLayer, workLayer entries) without a record, if they carry
//     this state root's owner mark and nothing is mounted on them or running in their cgroup;
//   - cgroups: only those of this installation's stopped containers, and of names whose
//     record is gone but whose marked layers show they were ours, when no process is in
//     them. Installations with other state roots share the cgroup parent, so a cgroup with
//     no record here and no marked layer is never touched: it may be another one's;
//   - network endpoints and addresses (with their veth and port rules) held by container IDs
//     that no record of this installation has (network state lives under the state root, so
//     it is never another installation's);
//   - (full prune only) watchers of this state root whose container has no record: killed,
//     which takes their container along; and mounts in the host's mount namespace under the
//     layer directories of containers without a live record: detached.
//
// While a damaged record is left, the full prune kills no watcher and frees no network
// attachment: which of them are its container's is unknown.
//
// Concurrent runs are never disturbed: a run holds a shared flock on the state root from
// before it reserves its record until its container has started (or it rolled back), and the
// collector takes that flock exclusively, without waiting, so it never sees a container being
// built. Records are locked one by one, without waiting; a busy one is left for next time.

// ErrPruneBusy means runs were being created in the installation for the whole time a prune
// was willing to wait.
var ErrPruneBusy = errors.New("containers are being created: try again")

// Pruned is one thing the collector removed or repaired.
type Pruned struct {
	Kind string `json:"kind"` // state, container, layer, cgroup, network, watcher, mount
	What string `json:"what"`
}

func (p Pruned) String() string { return p.Kind + ": " + p.What }

// PruneOptions says how thorough a prune is.
type PruneOptions struct {
	// Full also looks at every process (for watchers) and at the host's mounts, and at the
	// cgroups of every stopped container. ps and run prune without it.
	Full bool
	// Wait is how long to wait for runs being created to finish; 0 means not at all.
	Wait time.Duration
}

// layerOwnerXattr marks a layer directory with the state root of the installation that made
// it, so that the collector never mistakes another installation's layers (in a shared image
// root) for orphans.
const layerOwnerXattr = "trusted.fockker.state"

// LazyPruneInterval is how often ps runs the collector's cheap pass at most.
const LazyPruneInterval = 5 * time.Second

// lazyPruneXattr keeps, on the state root, when ps last ran the cheap pass.
const lazyPruneXattr = "trusted.fockker.lazy-prune"

// watchRootEnv names, in a watcher's environment, the state root it belongs to.
const watchRootEnv = "_FOCKKER_WATCH_ROOT"

// lockInstall flocks the state root directory: shared by runs while they build a container,
// exclusive for the collector.
func lockInstall(root string, how int) (*Lock, error) {
	if how&unix.LOCK_NB == 0 {
		if err := mkdirTop(root); err != nil {
			return nil, fmt.Errorf("create state root: %w", err)
		}
	}
	return lockDir(root, how)
}

// markLayer records the owner of a layer directory. A file system without trusted extended
// attributes keeps the directory unmarked: the collector then never removes it.
func markLayer(dir, stateRoot string) error {
	err := unix.Setxattr(dir, layerOwnerXattr, []byte(filepath.Clean(stateRoot)), 0)
	if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EOPNOTSUPP) {
		return &os.PathError{Op: "setxattr " + layerOwnerXattr, Path: dir, Err: err}
	}
	return nil
}

// ownedLayer reports whether dir carries the owner mark of stateRoot.
func ownedLayer(dir, stateRoot string) bool {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(dir, layerOwnerXattr, buf)
	return err == nil && string(buf[:n]) == filepath.Clean(stateRoot)
}

// PruneLazily is the collector's cheap pass, run by ps: it gives up at once if runs are being
// created, and reports nothing. It reads only the records that are not final (see Store).
// With every > 0 it runs at most that often (its last run is kept in an extended attribute
// of the state root): ps, which scripts poll, passes a few seconds. With 0 it always runs
// and stamps nothing (PruneForRun is what a run needs of it). Its errors only matter to a
// debugging user.
func PruneLazily(roots Roots, every time.Duration) error {
	if _, err := os.Stat(roots.State); err != nil {
		return nil // nothing was ever made here
	}
	if every > 0 {
		buf := make([]byte, 32)
		if n, err := unix.Getxattr(roots.State, lazyPruneXattr, buf); err == nil {
			if last, err := strconv.ParseInt(string(buf[:n]), 10, 64); err == nil && time.Since(time.Unix(0, last)) < every {
				return nil
			}
		}
	}
	_, err := Prune(roots, PruneOptions{})
	if errors.Is(err, ErrPruneBusy) {
		return nil
	}
	if every > 0 && err == nil {
		stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := unix.Setxattr(roots.State, lazyPruneXattr, []byte(stamp), 0); err != nil &&
			!errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EOPNOTSUPP) {
			return &os.PathError{Op: "setxattr " + lazyPruneXattr, Path: roots.State, Err: err}
		}
	}
	return err
}

// PruneForRun is the cheap pass of a run, made before it creates its container: of what
// crashes left, it frees what this run may need and nothing else (ps's pass and system prune
// see to the rest): the name it asks for (a record directory a crash emptied or damaged,
// once nobody holds it and no process is in its cgroup, and then the name's orphan layers),
// and, when it publishes ports, the ports of containers that died unrecorded (see settle).
// A run with neither a name nor ports has nothing to free and reads nothing. Like
// PruneLazily, it gives up at once while runs are being created, and reports nothing.
func PruneForRun(roots Roots, spec Spec) error {
	if spec.Name == "" && len(spec.Ports) == 0 {
		return nil
	}
	if err := roots.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(roots.State); err != nil {
		return nil // nothing was ever made here
	}
	lk, err := lockExclusive(roots.State, 0)
	if errors.Is(err, ErrPruneBusy) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lk.Unlock()
	g := &collector{roots: roots, store: NewStore(roots.State)}
	var errs []error
	if spec.Name != "" && ValidateName("container", spec.Name) == nil && spec.Name != networkDir {
		if err := g.freeName(spec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(spec.Ports) > 0 {
		ents, err := readDir(roots.State)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		entries, err := g.store.scan(ents)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		recs, err := g.mayNeedSettling(entries)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, rec := range recs {
			if err := g.settle(rec); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// freeName frees a name of what a crash left: its record directory without a readable
// record, then its orphan layers. A readable record keeps the name (and its layers).
func (g *collector) freeName(name string) error {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(g.roots.State, name, configName), &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		if _, err := os.Lstat(filepath.Join(g.roots.State, name)); err == nil {
			if gone, err := g.removeEmptied(name); err != nil || !gone {
				return err
			}
		}
	case err != nil:
		return &os.PathError{Op: "stat", Path: filepath.Join(g.roots.State, name, configName), Err: err}
	case st.Mode&0o222 == 0:
		return nil // a stopped record: the name is taken until rm
	default:
		rec, err := g.store.Load(name)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil || rec.Status != Damaged {
			return err
		}
		if gone, err := g.removeDamaged(name); err != nil || !gone {
			return err
		}
	}
	return g.orphanLayers(map[string]bool{name: true})
}

// Prune removes this installation's orphans (see above) and reports what it removed. What
// was removed before an error is reported too.
func Prune(roots Roots, opts PruneOptions) (out []Pruned, err error) {
	if err := roots.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(roots.State); errors.Is(err, os.ErrNotExist) {
		// Nothing of this installation's, but the parent cgroup is shared by all of them:
		// one whose state root was deleted without a prune leaves it, empty, to any prune.
		return nil, cgroup.RemoveParent(DefaultCgroupParent)
	}
	lk, err := lockExclusive(roots.State, opts.Wait)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	g := &collector{roots: roots, store: NewStore(roots.State), opts: opts}
	if err := g.run(); err != nil {
		return g.out, err
	}
	// What containers leave in place for the next one goes too: the spare record directory
	// (no reservation runs while the lock is held) and the shared parent cgroup once empty
	// (a run racing this recreates it).
	if err := g.store.removeSpare(); err != nil {
		return g.out, err
	}
	return g.out, cgroup.RemoveParent(DefaultCgroupParent)
}

// lockExclusive takes the installation's lock without blocking, retrying until wait passes.
func lockExclusive(root string, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		lk, err := lockInstall(root, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return lk, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("prune %s: %w", root, ErrPruneBusy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type collector struct {
	roots Roots
	store *Store
	opts  PruneOptions
	out   []Pruned
}

func (g *collector) add(kind, format string, args ...any) {
	g.out = append(g.out, Pruned{Kind: kind, What: fmt.Sprintf(format, args...)})
}

func (g *collector) run() error {
	entries, err := g.stateDirs()
	if err != nil {
		return err
	}
	// The full pass compares everything with every record. The cheap pass reads only the
	// records that may need settling: a stopped record is final, and the stat of stateDirs
	// told which ones are (see Store).
	var recs []*Record
	if g.opts.Full {
		recs, err = g.store.List()
	} else {
		recs, err = g.mayNeedSettling(entries)
	}
	if err != nil {
		return err
	}
	var errs []error
	recs, removed, left, err := g.damaged(recs)
	if err != nil {
		errs = append(errs, err)
	}
	// A damaged record left (a process is still in its cgroup) hides which watcher and which
	// network attachment are its container's: those passes wait until it is gone.
	if g.opts.Full && !left {
		if err := g.watchers(recs); err != nil {
			return err
		}
	}
	for _, rec := range recs {
		if err := g.settle(rec); err != nil {
			errs = append(errs, err)
		}
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.name] = !removed[e.name]
	}
	if err := g.layers(names); err != nil {
		errs = append(errs, err)
	}
	if err := g.unpackDirs(); err != nil {
		errs = append(errs, err)
	}
	// Only a lost record leaves network state behind (a removal disconnects before it
	// deletes the record), so the cheap pass does not read every endpoint and address.
	if g.opts.Full && !left {
		ids := map[string]bool{}
		for _, r := range recs {
			ids[r.ID] = true
		}
		if err := g.network(ids); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stateDirs removes temporary directories of reservations and removals, and record
// directories left without their config.json by a crash, and returns the record directories
// that are left, with what a stat of their config.json says.
func (g *collector) stateDirs() ([]recordEntry, error) {
	ents, err := readDir(g.roots.State)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name, p := e.Name(), filepath.Join(g.roots.State, e.Name())
		if e.IsDir() && (strings.HasPrefix(name, ".new-") || strings.HasPrefix(name, ".rm-")) {
			if err := os.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("prune: %w", err)
			}
			g.add("state", "temporary directory %s", p)
		}
	}
	entries, err := g.store.scan(ents)
	if err != nil {
		return nil, err
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.missing {
			gone, err := g.removeEmptied(e.name)
			if err != nil {
				return nil, err
			}
			if gone {
				continue
			}
			e.missing = false // written meanwhile, or busy: read it as not final
		}
		kept = append(kept, e)
	}
	return kept, nil
}

// removeEmptied removes the record directory of name if it has no config.json (a
// reservation or removal cut short by a crash) and nobody holds it, and reports whether it
// is gone.
func (g *collector) removeEmptied(name string) (bool, error) {
	p := filepath.Join(g.roots.State, name)
	lk, err := g.store.tryLock(name)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, nil // busy
	}
	defer lk.Unlock()
	if _, err := os.Stat(filepath.Join(p, configName)); !errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err := g.store.Delete(name); err != nil {
		return false, fmt.Errorf("prune: %w", err)
	}
	g.add("state", "record directory %s without a record", p)
	return true, nil
}

// mayNeedSettling reads the records that are not final: created or running ones (which
// settle checks), damaged ones, and stopped ones written before stopped records were
// read-only.
func (g *collector) mayNeedSettling(entries []recordEntry) ([]*Record, error) {
	var recs []*Record
	for _, e := range entries {
		if e.final {
			continue
		}
		rec, err := g.store.Load(e.name)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// damaged removes the damaged records (see Store.Load) whose container is provably gone:
// nobody holds the record's lock and no process is in its cgroup. (After a crash of the
// machine, which is what damages a record, none is.) Their layers and cgroup are then
// orphans that the rest of the pass collects. It returns the other records, the names
// removed, and whether a damaged record is left.
func (g *collector) damaged(recs []*Record) (rest []*Record, removed map[string]bool, left bool, err error) {
	removed = map[string]bool{}
	var errs []error
	for _, rec := range recs {
		if rec.Status != Damaged {
			rest = append(rest, rec)
			continue
		}
		gone, err := g.removeDamaged(rec.Name)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed[rec.Name] = true
		} else {
			left = true
		}
	}
	return rest, removed, left, errors.Join(errs...)
}

// removeDamaged removes one damaged record if its container is provably gone, and reports
// whether the record is gone.
func (g *collector) removeDamaged(name string) (bool, error) {
	lk, err := g.store.tryLock(name)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, nil // busy: someone is at work on it
	}
	defer lk.Unlock()
	cur, err := g.store.Load(name)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil || cur.Status != Damaged {
		return false, err
	}
	cg, err := cgroup.Load(DefaultCgroupParent, name)
	if err != nil {
		return false, err
	}
	if busy, err := cgroupBusy(cg); err != nil || busy {
		return false, err
	}
	if err := g.store.Delete(name); err != nil {
		return false, fmt.Errorf("prune: %w", err)
	}
	g.add("state", "damaged record %s", filepath.Join(g.roots.State, name, configName))
	return true, nil
}

// settle records as stopped a container whose init is gone while its record says otherwise
// (its creator or watcher was killed) and frees its ports. A container whose watcher still
// lives is left to it: it records the exit code. A full prune also removes the empty cgroups
// of containers recorded as stopped (their exit, OOM kills included, is recorded by then).
func (g *collector) settle(rec *Record) error {
	if rec.Status == Damaged {
		return nil // left by damaged: a process is still in its cgroup
	}
	if rec.Status == Stopped {
		if g.opts.Full {
			return g.removeCgroup(rec.Spec.CgroupParent, rec.Name, false)
		}
		return nil
	}
	if alive(rec.Pid, rec.StartTime) || (rec.WatcherPid > 0 && processExists(rec.WatcherPid)) {
		return nil
	}
	lk, err := g.store.tryLock(rec.Name)
	if err != nil {
		return nil // busy (being removed, or its parent records the exit) or gone
	}
	defer lk.Unlock()
	cur, err := g.store.Load(rec.Name)
	if err != nil || cur.ID != rec.ID || cur.Status == Stopped || cur.Status == Damaged || alive(cur.Pid, cur.StartTime) {
		return nil
	}
	if err := releasePorts(g.roots, cur); err != nil {
		return err
	}
	cur.Status = Stopped
	cur.FinishedAt = time.Now().Format(time.RFC3339Nano)
	if err := g.store.Save(cur); err != nil {
		return err
	}
	g.add("container", "%s (%s): its process is gone; recorded as stopped, ports freed", cur.Name, cur.ID)
	if g.opts.Full && cur.WatcherPid > 0 {
		// Its watcher is dead, so nobody will read the cgroup's OOM count any more. (The
		// CLI of an attached run may still be about to: its cgroup waits for the next pass.)
		return g.removeCgroup(cur.Spec.CgroupParent, cur.Name, false)
	}
	return nil
}

// processExists reports whether pid names a process that is not a zombie.
func processExists(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// removeCgroup removes the cgroup parent/name if it exists and holds no process; with wait,
// it gives processes that are exiting a moment to leave first. A busy cgroup is left alone
// and reported with ErrBusy only when waiting was asked for.
func (g *collector) removeCgroup(parent, name string, wait bool) error {
	cg, err := cgroup.Load(parent, name)
	if err != nil {
		return err
	}
	if !cg.Exists() {
		return nil
	}
	if busy, err := cgroupBusy(cg); err != nil {
		return err
	} else if busy && !wait {
		return nil
	}
	if err := cg.Destroy(); err != nil {
		return err
	}
	g.add("cgroup", "%s", cg)
	return nil
}

// cgroupBusy reports whether any hierarchy of cg lists a process.
func cgroupBusy(cg *cgroup.Cgroup) (bool, error) {
	for _, dir := range cg.Paths() {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// layers removes the layer directories of names that have no record, if one of them carries
// this installation's mark (the mount point's mark is hidden while something is mounted on
// it), unless the container still runs (its cgroup has processes) or, lazily, something is
// mounted on them. The mount point goes first and the marked directories last, so that a
// prune that fails halfway can prove ownership next time.
func (g *collector) layers(names map[string]bool) error {
	candidates := map[string]bool{}
	for _, sub := range layerSubdirs() {
		ents, err := readDir(filepath.Join(g.roots.Image, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !names[e.Name()] && e.IsDir() && ValidateName("container", e.Name()) == nil {
				candidates[e.Name()] = true
			}
		}
	}
	return g.orphanLayers(candidates)
}

// layerSubdirs are the image root's directories of per-container layers.
func layerSubdirs() []string { return []string{"mnt", "writeLayer", "workLayer"} }

// orphanLayers removes the layers of candidates, names that have no record: see layers.
func (g *collector) orphanLayers(candidates map[string]bool) error {
	orphans := map[string][]string{}
	for name := range candidates {
		var dirs []string
		owned := false
		for _, sub := range layerSubdirs() {
			p := filepath.Join(g.roots.Image, sub, name)
			if _, err := os.Lstat(p); err == nil {
				dirs = append(dirs, p)
				owned = owned || ownedLayer(p, g.roots.State)
			}
		}
		if owned {
			orphans[name] = dirs
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(orphans)) {
		if g.opts.Full {
			if err := g.unmountUnder(mounts, orphans[name]); err != nil {
				errs = append(errs, err)
				continue
			}
			if mounts, err = mountPoints(); err != nil {
				return err
			}
		}
		if mountedUnder(mounts, orphans[name]) {
			continue
		}
		// Its cgroup goes first: while a process is in it, the layers are in use. The
		// cgroup parent of a record that is gone is unknown; ours is the default.
		if err := g.removeCgroup(DefaultCgroupParent, name, g.opts.Full); err != nil {
			if !errors.Is(err, cgroup.ErrBusy) {
				errs = append(errs, err)
			}
			continue
		}
		cg, err := cgroup.Load(DefaultCgroupParent, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cg.Exists() {
			continue // busy: a container without a record still runs in it
		}
		for _, p := range orphans[name] {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("prune: %w", err))
				break
			}
			g.add("layer", "%s", p)
		}
	}
	return errors.Join(errs...)
}

// unpackDirs removes what a killed first use of an image archive left: EnsureImage unpacks
// <name>.tar into .unpack-<name>-* while it holds a lock on the archive, so a directory whose
// archive nobody holds locked is garbage.
func (g *collector) unpackDirs() error {
	ents, err := readDir(g.roots.Image)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), ".unpack-")
		i := strings.LastIndexByte(rest, '-')
		if !ok || !e.IsDir() || i <= 0 || ValidateName("image", rest[:i]) != nil {
			continue
		}
		p := filepath.Join(g.roots.Image, e.Name())
		archive, err := os.Open(g.roots.ImageDir(rest[:i]) + ".tar")
		if err == nil {
			err = unix.Flock(int(archive.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err != nil {
				archive.Close()
				continue // being unpacked
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		err = os.RemoveAll(p)
		if archive != nil {
			archive.Close()
		}
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		g.add("image", "temporary directory %s", p)
	}
	return nil
}

// mountPoints returns the mount points of our mount namespace.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, mountinfo.Unescape(fields[4]))
		}
	}
	return out, sc.Err()
}

func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func mountedUnder(mounts, dirs []string) bool {
	for _, m := range mounts {
		for _, d := range dirs {
			if under(m, d) {
				return true
			}
		}
	}
	return false
}

// unmountUnder detaches every mount on or below dirs, deepest first.
func (g *collector) unmountUnder(mounts, dirs []string) error {
	var mine []string
	for _, m := range mounts {
		for _, d := range dirs {
			if under(m, d) {
				mine = append(mine, m)
			}
		}
	}
	slices.SortFunc(mine, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mine {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "umount", Path: m, Err: err}
		}
		g.add("mount", "%s", m)
	}
	return nil
}

// network releases what container IDs without a record hold on this installation's
// networks: endpoint, address, veth and port rules.
func (g *collector) network(ids map[string]bool) error {
	mgr := network.NewManager(g.roots.State)
	if _, err := os.Stat(mgr.Root()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	nets, err := mgr.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		holders, err := mgr.Holders(n.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range holders {
			if ids[id] {
				continue
			}
			ep := &network.Endpoint{ID: id, Network: n.Name, HostVeth: network.HostVethName(id)}
			if err := mgr.Disconnect(ep); err != nil {
				errs = append(errs, err)
				continue
			}
			g.add("network", "container %s on %s: endpoint, address, veth and port rules", id, n.Name)
		}
	}
	return errors.Join(errs...)
}

// watchers kills the watchers of this state root whose container has no record: nobody can
// stop or remove such a container, and it dies with its watcher. Only a full prune looks,
// since it reads every process's command line.
func (g *collector) watchers(recs []*Record) error {
	known := map[int]bool{}
	for _, r := range recs {
		if r.WatcherPid > 0 {
			known[r.WatcherPid] = true
		}
	}
	pids, err := watcherPids(g.roots.State)
	if err != nil {
		return err
	}
	var killed []int
	for _, pid := range pids {
		if known[pid] {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		// The PID is pinned: check it is still that watcher before signalling it.
		if isWatcherOf(pid, g.roots.State) {
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err == nil {
				killed = append(killed, pid)
				g.add("watcher", "pid %d, whose container has no record", pid)
			}
		}
		unix.Close(fd)
	}
	// Their containers die with them (parent-death signal); give the kernel a moment so
	// that their cgroups and layers can go in this pass.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for time.Now().Before(deadline) {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// watcherPids lists the watchers whose environment names stateRoot.
func watcherPids(stateRoot string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if isWatcherOf(pid, stateRoot) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// isWatcherOf reports whether pid is a fockker watcher of stateRoot: its command line is
// "fockker watch..." and its environment marks it as one, for that state root.
func isWatcherOf(pid int, stateRoot string) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil || !strings.HasPrefix(string(cmdline), "fockker\x00"+WatchCommand) {
		return false
	}
	env, err := os.ReadFile(dir + "/environ")
	if err != nil {
		return false
	}
	vars := strings.Split(string(env), "\x00")
	return slices.Contains(vars, watchEnv+"=1") && slices.Contains(vars, watchRootEnv+"="+filepath.Clean(stateRoot))
}
