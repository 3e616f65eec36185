// Package cgroup creates, limits, joins and removes the cgroup of one
// container on cgroup v1, v2 and hybrid hosts.
//
// A container's cgroup lives at <parent>/<name> from the root of every
// hierarchy: /sys/fs/cgroup/<controller>/fockker/NAME on v1 and hybrid hosts
// (hybrid hosts are driven as v1, plus the name=systemd and the hybrid
// unified hierarchies, which get the same directory), /sys/fs/cgroup/fockker/NAME
// on pure v2. The package drives cgroupfs itself, with the same directories
// and control-file writes as the fs and fs2 managers of
// github.com/opencontainers/cgroups (runc's) but without that library, its
// per-call discovery and read-back: New finds the hierarchies with two
// statfs(2) and one read of /proc/self/mountinfo, Create makes the
// directories and writes only the limits asked for, Destroy is one rmdir(2)
// per directory when the tasks are gone. On v2 the device rules are an eBPF
// program of ours with the same instructions as runc's (devices.go, bpf.go),
// loaded and attached with bpf(2). On top of
// that it adds ownership (refusing an existing cgroup), a check that every
// requested limit has its controller, per-limit error messages, rollback,
// retries for concurrent create/destroy under a shared parent, and a
// teardown that waits for dying tasks and removes the parent once empty.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// DefaultParent is the parent used when New or Load get "".
	DefaultParent = "fockker"

	// createAttempts bounds the retries of Create when a concurrent Destroy
	// removes the shared parent directory under it.
	createAttempts = 20
	// defaultDestroyWait is how long Destroy waits for tasks that are still
	// exiting to leave the cgroup.
	defaultDestroyWait = 5 * time.Second
	// addAttempts bounds the retries of a cgroup.procs write that fails
	// with EINVAL because the task is still being forked (TASK_NEW).
	addAttempts = 5
)

// Cgroup is the cgroup of one container. Its methods are not safe for
// concurrent use on one value; distinct values may be used concurrently.
type Cgroup struct {
	parent, name string
	limits       Limits
	unified      bool // pure cgroup v2
	// paths is subsystem -> absolute directory (v1; hybrid adds "" for the
	// unified hierarchy and "name=systemd"), or {"": dir} on v2.
	paths       map[string]string
	destroyWait time.Duration
}

// New validates the names and limits and prepares (without touching the
// filesystem) the cgroup parent/name. An empty parent means DefaultParent.
func New(parent, name string, l Limits) (*Cgroup, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return newCgroup(parent, name, l)
}

// Load returns the cgroup parent/name without limits, for Add, Paths or
// Destroy by a later process. It does not require the cgroup to exist.
func Load(parent, name string) (*Cgroup, error) {
	return newCgroup(parent, name, Limits{})
}

// validateName checks that s is one safe path component:
// [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 255 bytes.
func validateName(what, s string) error {
	ok := len(s) > 0 && len(s) <= 255
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || (i > 0 && (c == '_' || c == '.' || c == '-'))
	}
	if !ok {
		return fmt.Errorf("%w: %s %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 255 bytes", ErrInvalidName, what, s)
	}
	return nil
}

func newCgroup(parent, name string, l Limits) (*Cgroup, error) {
	if parent == "" {
		parent = DefaultParent
	}
	if err := validateName("cgroup parent", parent); err != nil {
		return nil, err
	}
	if err := validateName("cgroup name", name); err != nil {
		return nil, err
	}
	mode := detectMode()
	c := &Cgroup{
		parent:      parent,
		name:        name,
		limits:      l,
		unified:     mode == modeV2,
		destroyWait: defaultDestroyWait,
	}
	paths, err := hierarchyPaths(mode, "/"+parent+"/"+name)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("cgroup %s: %w: no cgroup hierarchy is mounted", c, ErrControllerUnavailable)
	}
	c.paths = paths
	return c, nil
}

// String returns "parent/name".
func (c *Cgroup) String() string { return c.parent + "/" + c.name }

// Paths returns the cgroup's directory per hierarchy: subsystem -> absolute
// dir on v1 and hybrid hosts (hybrid includes "" for the unified hierarchy
// and "name=systemd"), {"": dir} on v2. A process joins by writing its pid
// to <dir>/cgroup.procs in every one of them. The map is a copy.
func (c *Cgroup) Paths() map[string]string { return maps.Clone(c.paths) }

// Exists reports whether the cgroup directory exists in any hierarchy.
func (c *Cgroup) Exists() bool {
	for _, p := range c.dirs() {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// OpenFD opens the cgroup's directory on the unified (cgroup v2) hierarchy:
// the whole cgroup on a v2 host, its unified part on a hybrid host. It is
// meant for syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}:
// clone3(2) then starts the child inside the cgroup (CLONE_INTO_CGROUP)
// instead of Add moving it there. That matters for speed: every write of a
// pid to cgroup.procs takes the kernel's global threadgroup lock, and the
// first one after an idle spell waits for an RCU grace period (5-15 ms
// measured on a 2-CPU host), while CLONE_INTO_CGROUP takes no such lock. On
// a hybrid host the child must still join the v1 hierarchies: with Add, or,
// while it is single-threaded, by writing "0" to <dir>/tasks in each v1
// directory of Paths, which moves the calling thread without the global
// lock. Call it after Create; the caller closes the file. It fails with
// ErrControllerUnavailable on a v1 host without a unified hierarchy.
func (c *Cgroup) OpenFD() (*os.File, error) {
	dir, ok := c.paths[""]
	if !ok {
		return nil, fmt.Errorf("cgroup %s: %w: no cgroup v2 hierarchy is mounted", c, ErrControllerUnavailable)
	}
	fd, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// Create creates the cgroup in every hierarchy and applies every limit. It
// fails with ErrExist if the cgroup exists in any hierarchy, and with an
// error naming the limit and controller if any limit cannot be applied; on
// failure it removes whatever it created. It is Claim then Complete.
func (c *Cgroup) Create() error {
	if err := c.Claim(); err != nil {
		return err
	}
	if err := c.Complete(); err != nil {
		if rerr := c.remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	return nil
}

// Claim does the part of Create that makes the cgroup ours: on a cgroup v2
// host all of it (one directory with its limits); on v1 and hybrid hosts the
// directory in the first hierarchy (the unified one on a hybrid host, which
// has no controllers), so that a process can be cloned into it (OpenFD) while
// Complete makes the rest. It fails with ErrExist if the cgroup exists in any
// hierarchy; on failure it removes whatever it created.
func (c *Cgroup) Claim() (retErr error) {
	ss := c.limits.settings(c.unified)
	rootControllers, err := c.precheck(ss)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c, err)
	}
	for _, p := range c.dirs() {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("cgroup %s: %s: %w", c, p, ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroup %s: %w", c, err)
		}
	}

	claimed := false
	defer func() {
		if retErr != nil && claimed {
			if err := c.remove(); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("rollback: %w", err))
			}
		}
	}()
	if err := c.makeDirs(&claimed, rootControllers, c.unified); err != nil {
		return fmt.Errorf("cgroup %s: create: %w", c, err)
	}
	if !c.unified {
		return nil
	}
	// Enabling controllers in the ancestors' cgroup.subtree_control ignores
	// failures (as runc does): check that the ones we need really reached
	// our cgroup.
	dir := c.paths[""]
	f := filepath.Join(dir, "cgroup.controllers")
	data, err := readFile(f)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c, err)
	}
	where := f + " (enabled by " + filepath.Join(filepath.Dir(dir), "cgroup.subtree_control") + ")"
	if err := checkV2Available(data, where, ss); err != nil {
		return fmt.Errorf("cgroup %s: %w", c, err)
	}
	return c.applyAll(ss)
}

// Complete finishes what Claim started: on v1 and hybrid hosts it creates
// the cgroup in the other hierarchies and applies every limit (nothing is
// left to do on v2). On failure it removes nothing: a process may already
// be in the claimed cgroup, so the caller stops that first, then calls
// Destroy.
func (c *Cgroup) Complete() error {
	if c.unified {
		return nil
	}
	claimed := true
	if err := c.makeDirs(&claimed, nil, true); err != nil {
		return fmt.Errorf("cgroup %s: create: %w", c, err)
	}
	return c.applyAll(c.limits.settings(c.unified))
}

// applyAll writes every limit, then the device rules: on v1 to the devices
// controller, on v2 as an eBPF program attached to the cgroup (no controller
// to enable).
func (c *Cgroup) applyAll(ss []setting) error {
	for _, s := range ss {
		if err := c.apply(s.controller, s.writes); err != nil {
			return fmt.Errorf("cgroup %s: cannot apply %s (%s controller): %w", c, s.limit, s.controller, err)
		}
	}
	if err := c.applyDevices(); err != nil {
		return fmt.Errorf("cgroup %s: cannot apply the device rules: %w", c, err)
	}
	return nil
}

// precheck fails, before anything is created, if a limit's controller is
// missing or a requested CPU is offline. On v2 it returns the controllers
// of the root (/sys/fs/cgroup/cgroup.controllers), which Create enables on
// the way down to the cgroup.
func (c *Cgroup) precheck(ss []setting) (rootControllers []string, err error) {
	if c.unified {
		f := filepath.Join(unifiedRoot, "cgroup.controllers")
		data, err := readFile(f)
		if err != nil {
			return nil, err
		}
		if err := checkV2Available(data, f, ss); err != nil {
			return nil, err
		}
		rootControllers = strings.Fields(data)
	} else if err := checkV1Mounted(c.paths, ss); err != nil {
		return nil, err
	} else if _, ok := c.paths["devices"]; !ok {
		return nil, fmt.Errorf("cannot apply the device rules: %w: \"devices\" is not mounted", ErrControllerUnavailable)
	}
	if c.limits.Cpuset != "" {
		online, err := readFile(cpuOnlineFile)
		if err != nil {
			return nil, err
		}
		if err := checkCPUsOnline(c.limits.Cpuset, online); err != nil {
			return nil, err
		}
	}
	return rootControllers, nil
}

// dirs returns the distinct directories (hierarchies co-mounted like
// cpu,cpuacct share one) in the stable order of their subsystem names.
func (c *Cgroup) dirs() []string {
	out := make([]string, 0, len(c.paths))
	for _, k := range slices.Sorted(maps.Keys(c.paths)) {
		if p := c.paths[k]; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// claimPath is the directory whose mkdir(2) claims the cgroup: creating it
// exclusively (EEXIST -> ErrExist) makes two concurrent Creates of the same
// cgroup exclusive. cpuset is avoided, so that the cpuset directory is
// never one whose cpus and mems are still empty while another Create
// already counts it as claimed.
func (c *Cgroup) claimPath() string {
	for _, k := range slices.Sorted(maps.Keys(c.paths)) {
		if k != "cpuset" {
			return c.paths[k]
		}
	}
	return c.paths["cpuset"]
}

// makeDirs claims the cgroup and, with all, creates it in every hierarchy,
// retrying when a concurrent Destroy of a sibling removes the shared parent
// between its mkdir and ours. *claimed is set once the claim directory is
// ours, so that the caller's rollback removes it.
func (c *Cgroup) makeDirs(claimed *bool, rootControllers []string, all bool) error {
	delay := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.makeDirsOnce(claimed, rootControllers, all)
		if err == nil {
			return nil
		}
		// A parent being removed gives ENOENT on the mkdir of its child;
		// ENODEV when the kernel has already deactivated it. Our own
		// cgroup existing (ErrExist) is final.
		retry := !errors.Is(err, ErrExist) && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV))
		if !retry || attempt == createAttempts {
			if !*claimed {
				// The claim may have created the shared parent.
				err = errors.Join(err, removeIfEmpty(filepath.Dir(c.claimPath())))
			}
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (c *Cgroup) makeDirsOnce(claimed *bool, rootControllers []string, all bool) error {
	claim := c.claimPath()
	if !*claimed {
		if err := mkdirUnder(claim, false); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("%s: %w", claim, ErrExist)
			}
			return err
		}
		*claimed = true
	}
	if !all {
		return nil
	}
	for _, p := range c.dirs() {
		if p == claim {
			continue
		}
		// Exists already only if an earlier attempt made it: the
		// claim excludes every other Create of this cgroup.
		if err := mkdirUnder(p, true); err != nil {
			return err
		}
	}
	if c.unified {
		return enableControllers(claim, rootControllers)
	}
	if p, ok := c.paths["cpuset"]; ok {
		return populateCpuset(p)
	}
	return nil
}

// enableControllers makes the root's controllers available to the v2
// cgroup dir: it enables those missing from cgroup.subtree_control of the
// root and of dir's parent, ignoring failures as runc does (Create checks
// the ones it needs), and turns dir threaded if the kernel created it
// "domain invalid" (under a threaded parent). Reading subtree_control first
// keeps the common case, where nothing is missing, to reads only.
func enableControllers(dir string, controllers []string) error {
	for _, d := range []string{unifiedRoot, filepath.Dir(dir)} {
		f := filepath.Join(d, "cgroup.subtree_control")
		data, err := readFile(f)
		if err != nil {
			return err
		}
		have := strings.Fields(data)
		var missing []string
		for _, ctl := range controllers {
			if !slices.Contains(have, ctl) {
				missing = append(missing, "+"+ctl)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if writeFile(f, strings.Join(missing, " ")) != nil {
			for _, m := range missing {
				_ = writeFile(f, m)
			}
		}
	}
	typ, err := readFile(filepath.Join(dir, "cgroup.type"))
	if err != nil {
		return err
	}
	if strings.TrimSpace(typ) == "domain invalid" {
		_ = writeFile(filepath.Join(dir, "cgroup.type"), "threaded")
	}
	return nil
}

// apply makes a setting's writes in the directory of controller.
func (c *Cgroup) apply(controller string, ws []write) error {
	dir, ok := c.paths[controller]
	if c.unified {
		dir, ok = c.paths[""]
	}
	if !ok {
		return fmt.Errorf("%w: %q is not mounted", ErrControllerUnavailable, controller)
	}
	var later []write
	for _, w := range ws {
		err := c.writeSetting(dir, w)
		if errors.Is(err, unix.EINVAL) && w.retryLater {
			later = append(later, w)
			continue
		}
		if err != nil {
			return err
		}
	}
	for _, w := range later {
		if err := c.writeSetting(dir, w); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cgroup) writeSetting(dir string, w write) error {
	file := w.file
	err := writeFile(filepath.Join(dir, file), w.value)
	if errors.Is(err, unix.ENOENT) && !c.unified && strings.HasPrefix(file, "cpuset.") {
		// A v1 cpuset hierarchy mounted with noprefix (Android).
		file = strings.TrimPrefix(file, "cpuset.")
		err = writeFile(filepath.Join(dir, file), w.value)
	}
	if errors.Is(err, unix.ENOENT) && w.optional {
		return nil
	}
	if err != nil || !w.verify {
		return err
	}
	got, err := readFile(filepath.Join(dir, file))
	if err != nil {
		return err
	}
	if got = strings.TrimSpace(got); got != w.value {
		return fmt.Errorf("%s: wrote %s, the kernel set %s", filepath.Join(dir, file), w.value, got)
	}
	return nil
}

// applyDevices sets the device rules: on v1 by writing them to the devices
// controller (one open file per control file, one write per rule), on v2
// by attaching an eBPF device filter to the cgroup. As in runc, only an
// allow-everything filter (AllDevices) that the kernel refuses is not an
// error: without it every device is allowed all the same.
func (c *Cgroup) applyDevices() error {
	if c.unified {
		prog, err := deviceFilter(c.limits.deviceRules())
		if err != nil {
			return err
		}
		if err := attachDeviceFilter(c.paths[""], prog); err != nil && !c.limits.AllDevices {
			return err
		}
		return nil
	}
	dir, ok := c.paths["devices"]
	if !ok {
		return fmt.Errorf("%w: \"devices\" is not mounted", ErrControllerUnavailable)
	}
	ws := c.limits.deviceWritesV1()
	for i := 0; i < len(ws); {
		// One open of each file for its run of rules.
		path := filepath.Join(dir, ws[i].file)
		fd, err := openFile(path, unix.O_WRONLY)
		if err != nil {
			return err
		}
		for ; i < len(ws) && filepath.Join(dir, ws[i].file) == path; i++ {
			if err = writeFD(fd, path, ws[i].value); err != nil {
				break
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// Add moves process pid into the cgroup in every hierarchy.
//
// Each write to cgroup.procs takes the kernel's global threadgroup lock;
// the first one after an idle spell waits for an RCU grace period, which
// is most of what Add costs. See OpenFD for starting a child inside the
// cgroup instead.
func (c *Cgroup) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: add: invalid pid %d", c, pid)
	}
	s := strconv.Itoa(pid)
	for _, dir := range c.dirs() {
		if err := addPid(filepath.Join(dir, procsFile), s); err != nil {
			return fmt.Errorf("cgroup %s: add pid %d: %w", c, pid, err)
		}
	}
	return nil
}

// addPid writes pid to a cgroup.procs file, retrying EINVAL, which the
// kernel returns for a task that is still being forked.
func addPid(procs, pid string) error {
	for attempt := 1; ; attempt++ {
		err := writeFile(procs, pid)
		if err == nil || !errors.Is(err, unix.EINVAL) || attempt == addAttempts {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Destroy removes the cgroup from every hierarchy; the parent stays (see
// RemoveParent). It kills nothing: it waits (up to 5s) for tasks that are
// still exiting and fails with ErrBusy if some remain, after removing what
// it can. Finding nothing to remove is success.
func (c *Cgroup) Destroy() error {
	if err := c.remove(); err != nil {
		return fmt.Errorf("cgroup %s: destroy: %w", c, err)
	}
	return nil
}

func (c *Cgroup) remove() error {
	deadline := time.Now().Add(c.destroyWait)
	var errs []error
	dirs := c.dirs()
	for _, p := range dirs {
		// Once the tasks are gone one rmdir(2) is all it takes.
		err := unix.Rmdir(p)
		if err == nil || errors.Is(err, unix.ENOENT) {
			continue
		}
		// Tasks still exiting, or sub-cgroups: wait for the tasks, then
		// remove the sub-cgroups too, retrying EBUSY.
		if err := waitNoProcs(p, deadline); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removePath(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveParent removes the parent cgroup (DefaultParent for "") from every hierarchy where it
// is empty. Destroy leaves the parent in place for the next container, as docker leaves its
// own: creating and removing it with every container cost ten mkdir(2) and ten rmdir(2) on a
// v1 host. Finding it in use or gone is success.
func RemoveParent(parent string) error {
	if parent == "" {
		parent = DefaultParent
	}
	if err := validateName("cgroup parent", parent); err != nil {
		return err
	}
	paths, err := hierarchyPaths(detectMode(), "/"+parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range slices.Sorted(maps.Values(paths)) {
		if err := removeIfEmpty(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitNoProcs waits until dir/cgroup.procs is empty or gone, or deadline.
func waitNoProcs(dir string, deadline time.Time) error {
	delay := time.Millisecond
	for {
		pids, err := readProcs(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: pids %v: %w", dir, pids, ErrBusy)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// readProcs returns the pids listed in dir/cgroup.procs.
func readProcs(dir string) ([]int, error) {
	f := filepath.Join(dir, procsFile)
	data, err := readFile(f)
	if err != nil {
		return nil, err
	}
	var pids []int
	for field := range strings.FieldsSeq(data) {
		pid, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pid %q", f, field)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// removeIfEmpty removes the shared parent cgroup dir unless another
// container's cgroup is still in it (EBUSY on cgroupfs, ENOTEMPTY on other
// filesystems) or it is already gone.
func removeIfEmpty(dir string) error {
	err := unix.Rmdir(dir)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT), errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
		return nil
	default:
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
}

// Mode returns the host's cgroup mode: "v2" (pure unified), "hybrid" (v1
// controllers plus a cgroup2 mount at /sys/fs/cgroup/unified; driven as v1)
// or "v1".
func Mode() string { return detectMode().String() }

// OOMKills returns how many processes the kernel's OOM killer has killed in the cgroup:
// "oom_kill" of memory.events on v2, of memory.oom_control on v1. A cgroup without a memory
// controller reports 0.
func (c *Cgroup) OOMKills() (uint64, error) {
	var file string
	if c.unified {
		file = filepath.Join(c.paths[""], "memory.events")
	} else if dir, ok := c.paths["memory"]; ok {
		file = filepath.Join(dir, "memory.oom_control")
	} else {
		return 0, nil
	}
	b, err := readFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(b, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}
