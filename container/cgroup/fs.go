package cgroup

// The cgroup filesystem as this package sees it: the host's mode, where the
// v1 hierarchies are mounted (one read of /proc/self/mountinfo per New or
// Load, no cache), and control-file I/O with plain open/read/write/close —
// cgroupfs files are small, so one read or one write is the whole file.

import (
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/FishingRodd/fockker/internal/mountinfo"

	"golang.org/x/sys/unix"
)

const (
	unifiedRoot       = "/sys/fs/cgroup"
	hybridMountpoint  = "/sys/fs/cgroup/unified"
	cpuOnlineFile     = "/sys/devices/system/cpu/online"
	procSelfMountinfo = "/proc/self/mountinfo"
	procsFile         = "cgroup.procs"
)

// hostMode is how the host mounts cgroups.
type hostMode int

const (
	modeV1     hostMode = iota // v1 hierarchies only
	modeHybrid                 // v1 hierarchies plus cgroup2 at /sys/fs/cgroup/unified
	modeV2                     // cgroup2 alone at /sys/fs/cgroup
)

func (m hostMode) String() string {
	switch m {
	case modeV2:
		return "v2"
	case modeHybrid:
		return "hybrid"
	default:
		return "v1"
	}
}

// detectMode asks statfs(2) what is mounted at /sys/fs/cgroup and
// /sys/fs/cgroup/unified (two system calls).
func detectMode() hostMode {
	var st unix.Statfs_t
	if err := unix.Statfs(unifiedRoot, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeV2
	}
	if err := unix.Statfs(hybridMountpoint, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeHybrid
	}
	return modeV1
}

// v1Mounts returns subsystem -> mountpoint of the v1 hierarchies listed in
// a mountinfo text, for the subsystems isV1Subsystem accepts; the first
// mount of a subsystem wins. Only cgroup (v1) mounts under /sys/fs/cgroup count.
func v1Mounts(data string) (map[string]string, error) {
	out := make(map[string]string)
	for line := range strings.SplitSeq(data, "\n") {
		if line == "" {
			continue
		}
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		fsType, rest, _ := strings.Cut(post, " ")
		if fsType != "cgroup" {
			continue
		}
		fields := strings.Fields(pre)
		post2 := strings.Fields(rest)
		if len(fields) < 6 || len(post2) < 2 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		mnt := mountinfo.Unescape(fields[4])
		if !strings.HasPrefix(mnt, unifiedRoot+"/") {
			continue
		}
		for opt := range strings.SplitSeq(post2[1], ",") {
			if _, seen := out[opt]; !seen && isV1Subsystem(opt) {
				out[opt] = mnt
			}
		}
	}
	return out, nil
}

// isV1Subsystem reports whether a container's cgroup is created in the v1
// hierarchy of subsystem s (where mounted): the controllers runc knows plus
// the named systemd hierarchy and "misc", the same set and keys as the
// cgroup v1 manager of github.com/opencontainers/cgroups. A hybrid host adds
// "" for the unified hierarchy.
func isV1Subsystem(s string) bool {
	switch s {
	case "cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
		"net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd", "misc":
		return true
	}
	return false
}

// hierarchyPaths returns the directory of the cgroup at inner ("/parent/name")
// in every hierarchy: subsystem -> dir on v1 and hybrid hosts (hybrid adds ""
// for the unified hierarchy), {"": dir} on v2. A co-mounted hierarchy
// (cpu,cpuacct) gives the same dir under each of its subsystems. As in runc,
// the dir is /sys/fs/cgroup/<base name of the mountpoint><inner>.
func hierarchyPaths(mode hostMode, inner string) (map[string]string, error) {
	if mode == modeV2 {
		return map[string]string{"": unifiedRoot + inner}, nil
	}
	data, err := readFile(procSelfMountinfo)
	if err != nil {
		return nil, err
	}
	mounts, err := v1Mounts(data)
	if err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(mounts)+1)
	for sub, mnt := range mounts {
		paths[sub] = unifiedRoot + "/" + filepath.Base(mnt) + inner
	}
	if mode == modeHybrid {
		paths[""] = hybridMountpoint + inner
	}
	return paths, nil
}

// readFile returns the whole content of a (small, virtual) file.
func readFile(path string) (string, error) {
	b, err := smallfile.Read(path)
	return string(b), err
}

// writeFile writes data to an existing control file in one write(2), as
// cgroupfs wants (it parses each write on its own).
func writeFile(path, data string) error {
	fd, err := openFile(path, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return writeFD(fd, path, data)
}

func writeFD(fd int, path, data string) error {
	for {
		_, err := unix.Write(fd, []byte(data))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %q to %s: %w", data, path, err)
		}
		return nil
	}
}

func openFile(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// mkdir creates dir (mode 0755). existOK makes an existing dir a success.
func mkdir(dir string, existOK bool) error {
	err := unix.Mkdir(dir, 0o755)
	if err == nil || (existOK && errors.Is(err, unix.EEXIST)) {
		return nil
	}
	return &os.PathError{Op: "mkdir", Path: dir, Err: err}
}

// mkdirUnder is mkdir that first makes the parent when it is missing. The shared parent
// exists but for the first container since a prune: trying the child first spares a failing
// mkdir(2) of the parent per hierarchy and container.
func mkdirUnder(dir string, existOK bool) error {
	err := mkdir(dir, existOK)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := mkdir(filepath.Dir(dir), true); err != nil {
		return err
	}
	return mkdir(dir, existOK)
}

// readCpuset returns the trimmed cpus and mems of a v1 cpuset dir.
func readCpuset(dir, cpusFile, memsFile string) (cpus, mems string, err error) {
	c, err := readFile(dir + "/" + cpusFile)
	if err != nil {
		return "", "", err
	}
	m, err := readFile(dir + "/" + memsFile)
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(c), strings.TrimSpace(m), nil
}

// populateCpuset gives a new v1 cpuset cgroup the cpus and mems of its
// parent (a task cannot join a cpuset cgroup that has none), first giving
// the parent those of the hierarchy root if it has none either. dir must
// exist: it keeps the parent from being removed meanwhile.
func populateCpuset(dir string) error {
	parent := filepath.Dir(dir)
	cpusF, memsF := "cpuset.cpus", "cpuset.mems"
	cpus, mems, err := readCpuset(parent, cpusF, memsF)
	if errors.Is(err, unix.ENOENT) {
		// Mounted with noprefix (Android): "cpus" and "mems".
		cpusF, memsF = "cpus", "mems"
		cpus, mems, err = readCpuset(parent, cpusF, memsF)
	}
	if err != nil {
		return err
	}
	if cpus == "" || mems == "" {
		rootCpus, rootMems, err := readCpuset(filepath.Dir(parent), cpusF, memsF)
		if err != nil {
			return err
		}
		if cpus == "" {
			if err := writeFile(parent+"/"+cpusF, rootCpus); err != nil {
				return err
			}
			cpus = rootCpus
		}
		if mems == "" {
			if err := writeFile(parent+"/"+memsF, rootMems); err != nil {
				return err
			}
			mems = rootMems
		}
	}
	if err := writeFile(dir+"/"+cpusF, cpus); err != nil {
		return err
	}
	return writeFile(dir+"/"+memsF, mems)
}

// removePath removes the cgroup dir and any sub-cgroups in it, deepest
// first, as the cgroups library of runc does: one rmdir(2) when that is
// enough, else the sub-cgroups, then rmdir again, retrying EBUSY (tasks
// still leaving) a few times with a doubling delay (1 ms up to 512 ms).
// Finding dir gone is success.
func removePath(dir string) error {
	if err := rmdirCgroup(dir, false); err == nil {
		return nil
	}
	// Sub-cgroups, tasks that are still exiting, or no permission (a
	// read-only cgroupfs gives EROFS even for a missing dir): reading the
	// dir tells which.
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removePath(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return rmdirCgroup(dir, true)
}

// rmdirCgroup removes an empty cgroup dir; retryBusy retries EBUSY 10 times.
func rmdirCgroup(dir string, retryBusy bool) error {
	delay, tries := time.Millisecond, 10
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, err == unix.ENOENT:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EBUSY && retryBusy && tries > 0:
			time.Sleep(delay)
			delay *= 2
			tries--
			continue
		}
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
}
