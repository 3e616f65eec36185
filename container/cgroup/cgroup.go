// Package cgroup creates, limits, joins and removes the cgroup of one
// container on cgroup v1, v2 and hybrid hosts.
//
// A container's cgroup lives at <parent>/<name> from the root of every
// hierarchy: /sys/fs/cgroup/<controller>/fockker/NAME on v1 and hybrid hosts
// (hybrid hosts are driven as v1, plus the name=systemd and the hybrid
// unified hierarchies, which get the same directory), /sys/fs/cgroup/fockker/NAME
// on pure v2. Directories and limits are handled by
// github.com/opencontainers/cgroups (fs and fs2 managers); this package adds
// ownership (refusing an existing cgroup), a check that every requested limit
// has its controller, per-limit error messages, rollback, retries for
// concurrent create/destroy under a shared parent, and a teardown that waits
// for dying tasks and removes the parent once empty.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	// Registers the device rule writers: the devices controller on v1, an
	// eBPF program on v2. Without it the managers cannot apply device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/cgroups/manager"
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

	unifiedRoot   = "/sys/fs/cgroup"
	cpuOnlineFile = "/sys/devices/system/cpu/online"
)

// nameRE is what a parent or a container name must match: one safe path
// component.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// errIncomplete marks a Create attempt that raced with a concurrent Destroy
// of the shared parent and must be retried.
var errIncomplete = errors.New("cgroup directories incomplete")

// Cgroup is the cgroup of one container. Its methods are not safe for
// concurrent use on one value; distinct values may be used concurrently.
type Cgroup struct {
	parent, name string
	limits       Limits
	unified      bool // pure cgroup v2
	mgr          cgroups.Manager
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

func validateName(what, s string) error {
	if len(s) > 255 || !nameRE.MatchString(s) {
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
	c := &Cgroup{
		parent:      parent,
		name:        name,
		limits:      l,
		unified:     cgroups.IsCgroup2UnifiedMode(),
		destroyWait: defaultDestroyWait,
	}
	// The limits are not part of the manager's config: Create applies them
	// one by one with Set, so that a failure names the limit. Devices are
	// not skipped, so the v1 manager creates (and Add joins) the devices
	// cgroup too.
	config := &cgroups.Cgroup{
		Path:      "/" + parent + "/" + name,
		Resources: &cgroups.Resources{},
	}
	mgr, err := manager.New(config)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c, err)
	}
	c.paths = maps.Clone(mgr.GetPaths())
	if len(c.paths) == 0 {
		return nil, fmt.Errorf("cgroup %s: %w: no cgroup hierarchy is mounted", c, ErrControllerUnavailable)
	}
	suffix := "/" + parent + "/" + name
	for sub, p := range c.paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || !strings.HasSuffix(p, suffix) {
			return nil, fmt.Errorf("cgroup %s: unexpected path %q for %q", c, p, sub)
		}
	}
	c.mgr = mgr
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
	for _, p := range c.paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Create creates the cgroup in every hierarchy and applies every limit. It
// fails with ErrExist if the cgroup exists in any hierarchy, and with an
// error naming the limit and controller if any limit cannot be applied; on
// failure it removes whatever it created.
func (c *Cgroup) Create() (retErr error) {
	ss := c.limits.settings(c.unified, false)
	if err := c.precheck(ss); err != nil {
		return fmt.Errorf("cgroup %s: %w", c, err)
	}
	for _, p := range c.sortedPaths() {
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
	if err := c.makeDirs(&claimed); err != nil {
		return fmt.Errorf("cgroup %s: create: %w", c, err)
	}

	if c.unified {
		// fs2 enables every available controller in the ancestors'
		// cgroup.subtree_control but ignores failures: check that the
		// ones we need really reached our cgroup.
		dir := c.paths[""]
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", c, err)
		}
		where := filepath.Join(dir, "cgroup.controllers") + " (enabled by " +
			filepath.Join(filepath.Dir(dir), "cgroup.subtree_control") + ")"
		if err := checkV2Available(string(data), where, ss); err != nil {
			return fmt.Errorf("cgroup %s: %w", c, err)
		}
	} else if c.limits.Memory > 0 {
		// Swap accounting is optional on v1: set memsw only if present.
		_, err := os.Stat(filepath.Join(c.paths["memory"], "memory.memsw.limit_in_bytes"))
		ss = c.limits.settings(false, err == nil)
	}
	for _, s := range ss {
		if err := c.mgr.Set(s.res); err != nil {
			return fmt.Errorf("cgroup %s: cannot apply %s (%s controller): %w", c, s.limit, s.controller, err)
		}
	}
	// Device rules last: on v1 the devices controller, on v2 an eBPF
	// program attached to the cgroup (no controller to enable).
	if err := c.mgr.Set(&cgroups.Resources{Devices: c.limits.deviceRules()}); err != nil {
		return fmt.Errorf("cgroup %s: cannot apply the device rules: %w", c, err)
	}
	return nil
}

// precheck fails, before anything is created, if a limit's controller is
// missing or a requested CPU is offline.
func (c *Cgroup) precheck(ss []setting) error {
	if c.unified {
		f := filepath.Join(unifiedRoot, "cgroup.controllers")
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := checkV2Available(string(data), f, ss); err != nil {
			return err
		}
	} else if err := checkV1Mounted(c.paths, ss); err != nil {
		return err
	} else if _, ok := c.paths["devices"]; !ok {
		return fmt.Errorf("cannot apply the device rules: %w: \"devices\" is not mounted", ErrControllerUnavailable)
	}
	if c.limits.Cpuset != "" {
		online, err := os.ReadFile(cpuOnlineFile)
		if err != nil {
			return err
		}
		if err := checkCPUsOnline(c.limits.Cpuset, string(online)); err != nil {
			return err
		}
	}
	return nil
}

// sortedPaths returns the directories in a stable order.
func (c *Cgroup) sortedPaths() []string {
	keys := slices.Sorted(maps.Keys(c.paths))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = c.paths[k]
	}
	return out
}

// claimPath is the directory whose mkdir(2) claims the cgroup: creating it
// with plain Mkdir (EEXIST -> ErrExist) makes two concurrent Creates of the
// same cgroup exclusive. cpuset is avoided because the library must create
// cpuset directories itself to copy cpus/mems from the parent.
func (c *Cgroup) claimPath() string {
	for _, k := range slices.Sorted(maps.Keys(c.paths)) {
		if k != "cpuset" {
			return c.paths[k]
		}
	}
	return c.paths["cpuset"]
}

// makeDirs claims the cgroup and creates it in every hierarchy, retrying
// when a concurrent Destroy of a sibling removes the shared parent between
// its mkdir and ours. *claimed is set once the claim directory is
// ours, so that Create's rollback removes it.
func (c *Cgroup) makeDirs(claimed *bool) error {
	delay := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.makeDirsOnce(claimed)
		if err == nil {
			return nil
		}
		// A parent being removed gives ENOENT; ENODEV when one of its
		// files is opened while the kernel deactivates it; EEXIST from
		// os.MkdirAll when it vanishes between its mkdir and its lstat.
		// Our own cgroup existing (ErrExist) is final.
		retry := !errors.Is(err, ErrExist) && (errors.Is(err, fs.ErrNotExist) ||
			errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, errIncomplete))
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

func (c *Cgroup) makeDirsOnce(claimed *bool) error {
	if !*claimed {
		p := c.claimPath()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", p, ErrExist)
			}
			return err
		}
		*claimed = true
	}
	// pid -1: create (and on v2 enable controllers) without joining.
	if err := c.mgr.Apply(-1); err != nil {
		return err
	}
	// The library ignores errors for the named hierarchies (name=systemd,
	// hybrid unified); a racing rmdir of the parent can also leave a v1
	// cpuset cgroup with cpus/mems copied from a parent that was not yet
	// populated. Check both; Apply repairs them on the next attempt.
	for _, p := range c.sortedPaths() {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s missing after create: %w", p, errIncomplete)
		}
	}
	if p, ok := c.paths["cpuset"]; ok && !c.unified {
		populated, err := cpusetPopulated(p)
		if err != nil {
			return err
		}
		if !populated {
			return fmt.Errorf("%s: empty cpuset.cpus or cpuset.mems: %w", p, errIncomplete)
		}
	}
	return nil
}

// cpusetPopulated reports whether a v1 cpuset cgroup has both cpus and mems
// (a task cannot join one that does not).
func cpusetPopulated(dir string) (bool, error) {
	for _, f := range []string{"cpus", "mems"} {
		data, err := os.ReadFile(filepath.Join(dir, "cpuset."+f))
		if errors.Is(err, fs.ErrNotExist) {
			// cpuset mounted with "noprefix" (Android).
			data, err = os.ReadFile(filepath.Join(dir, f))
		}
		if err != nil {
			return false, err
		}
		if strings.TrimSpace(string(data)) == "" {
			return false, nil
		}
	}
	return true, nil
}

// Add moves process pid into the cgroup in every hierarchy.
func (c *Cgroup) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: add: invalid pid %d", c, pid)
	}
	if err := c.mgr.AddPid("", pid); err != nil {
		return fmt.Errorf("cgroup %s: add pid %d: %w", c, pid, err)
	}
	return nil
}

// Destroy removes the cgroup from every hierarchy, then the parent where it
// is left empty. It kills nothing: it waits (up to 5s) for tasks that are
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
	for _, p := range c.sortedPaths() {
		if err := waitNoProcs(p, deadline); err != nil {
			errs = append(errs, err)
			continue
		}
		// Removes sub-cgroups too and retries EBUSY; ENOENT is success.
		if err := cgroups.RemovePath(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range c.sortedPaths() {
		if err := removeIfEmpty(filepath.Dir(p)); err != nil {
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
	data, err := os.ReadFile(filepath.Join(dir, cgroups.CgroupProcesses))
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pid %q", filepath.Join(dir, cgroups.CgroupProcesses), f)
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
func Mode() string {
	switch {
	case cgroups.IsCgroup2UnifiedMode():
		return "v2"
	case cgroups.IsCgroup2HybridMode():
		return "hybrid"
	default:
		return "v1"
	}
}

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
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}
