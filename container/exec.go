package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/container/security"
	"github.com/FishingRodd/fockker/nsenter"
	"golang.org/x/sys/unix"
)

// ExecOptions describe a command to run in a running container.
type ExecOptions struct {
	Args []string // argv, exactly as given
	Env  []string // KEY=VALUE overriding the container's environment
	Cwd  string   // absolute; "" means the container's working directory
	Tty  bool     // stdin is a pty slave to become the controlling terminal
	// Detach: the process exits once the command runs (0) or could not be started
	// (125/126/127, with the reason on its stderr); the command stays in the container.
	Detach bool
}

// ExecProcess is a process, not yet started, that runs a command in a running container.
// Close it once it has been started (or will not be).
type ExecProcess struct {
	*exec.Cmd
	Record *Record // the container's record when the process was prepared
	files  []*os.File
}

// Close releases what the process needed only until it started.
func (p *ExecProcess) Close() {
	for _, f := range p.files {
		f.Close()
	}
}

// ExecCommand prepares a process that joins a running container's namespaces and cgroup and
// runs opts.Args there (through the nsenter constructor, before any Go runs in it). The
// container must be running now; its init is identified by PID and start time, and the
// constructor checks both again after pinning the process, so a stopped container or a
// reused PID never gets the command — least of all on the host. On a host with cgroup v2
// the process is cloned right into the container's v2 cgroup (CLONE_INTO_CGROUP): moving it
// there afterwards would cost a full RCU grace period (~10 ms); it joins v1 cgroups itself.
func ExecCommand(roots Roots, ref string, opts ExecOptions) (*ExecProcess, error) {
	if len(opts.Args) == 0 {
		return nil, fmt.Errorf("exec: a command is required")
	}
	if opts.Cwd != "" && !filepath.IsAbs(opts.Cwd) {
		return nil, fmt.Errorf("exec: -w %q: the working directory must be an absolute path", opts.Cwd)
	}
	rec, err := RunningRecord(roots, ref)
	if err != nil {
		return nil, err
	}
	env, err := nsenter.Environ(rec.Pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: environment of its init: %w", rec.Name, err)
	}
	if opts.Tty && envValue(env, "TERM") == "" {
		env = append(env, "TERM=xterm")
	}
	env = MergeEnv(env, opts.Env)
	cg, err := cgroup.Load(rec.Spec.CgroupParent, rec.Name)
	if err != nil {
		return nil, err
	}
	var v2 *os.File
	if _, ok := cg.Paths()[""]; ok {
		if v2, err = cg.OpenFD(); err != nil {
			return nil, fmt.Errorf("container %s: %w", rec.Name, err)
		}
	}
	closeV2 := func() {
		if v2 != nil {
			v2.Close()
		}
	}
	dirs := cgroupDirs(cg)
	cwd := opts.Cwd
	if cwd == "" {
		cwd = rec.Spec.WorkingDir
	}
	cfg := &nsenter.Config{
		Pid:        rec.Pid,
		StartTime:  rec.StartTime,
		Namespaces: rec.namespaces(),
		CgroupDirs: dirs,
		Cwd:        cwd,
		Env:        env,
		Args:       opts.Args,
		Tty:        opts.Tty,
		Detach:     opts.Detach,
	}
	if err := rec.restrict(cfg); err != nil {
		closeV2()
		return nil, fmt.Errorf("container %s: %w", rec.Name, err)
	}
	cmd, err := nsenter.Command("/proc/self/exe", cfg)
	if err != nil {
		closeV2()
		return nil, fmt.Errorf("container %s: %w", rec.Name, err)
	}
	p := &ExecProcess{Cmd: cmd, Record: rec, files: slices.Clone(cmd.ExtraFiles)}
	if v2 != nil {
		cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: int(v2.Fd())}
		p.files = append(p.files, v2)
	}
	return p, nil
}

// cgroupDirs lists cg's directories in v1 hierarchies, one per hierarchy, in a stable order
// (its v2 directory, if any, the exec'd process is cloned into).
func cgroupDirs(cg *cgroup.Cgroup) []string {
	var dirs []string
	for key, dir := range cg.Paths() {
		if key != "" {
			dirs = append(dirs, dir)
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// restrict gives an exec'd command the restrictions of the container's own processes: its
// user and groups, capabilities, no_new_privs and seccomp filter (compiled again from the
// profile recorded at run time).
func (r *Record) restrict(cfg *nsenter.Config) error {
	proc, err := r.Spec.Security.Process()
	if err != nil {
		return err
	}
	// A record without the resolved user predates users: its processes run as root.
	id := security.Identity{AdditionalGIDs: []uint32{0}}
	if r.User != nil {
		id = *r.User
	}
	restrict(cfg, proc, id)
	return nil
}

// restrict sets cfg's user, capabilities, no_new_privs and seccomp filter to those of a
// container process running as id under proc.
func restrict(cfg *nsenter.Config, proc *security.Process, id security.Identity) {
	sets := proc.CapSets(id.UID)
	cfg.Creds = &nsenter.Creds{UID: id.UID, GID: id.GID, Groups: id.AdditionalGIDs}
	cfg.Caps = &nsenter.Caps{Bounding: sets.Bounding, Effective: sets.Effective, Permitted: sets.Permitted,
		Inheritable: sets.Inheritable, Ambient: sets.Ambient}
	cfg.NoNewPrivs = proc.NoNewPrivileges
	if proc.Seccomp != nil {
		cfg.Seccomp = &nsenter.Seccomp{Flags: proc.Seccomp.Flags, Instructions: proc.Seccomp.Instructions()}
	}
}

// namespaces lists the namespaces a container has of its own, which exec joins.
func (r *Record) namespaces() []string {
	ns := []string{nsenter.NSIPC, nsenter.NSUTS, nsenter.NSPID, nsenter.NSMount}
	if r.Spec.ownNet() {
		ns = append(ns, nsenter.NSNet)
	}
	return ns
}

// MergeEnv overrides base with extra, key by key, keeping base's order.
func MergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// OpenPty opens a pseudo-terminal in the running container's own devpts instance, so that
// inside the container the exec'd process's terminal is a /dev/pts/N like any other (ttyname,
// tmux and friends need that). The master is checked to really be a devpts ptmx before use,
// and the slave is obtained from it with TIOCGPTPEER, never by a path the container controls.
func (r *Record) OpenPty() (master, slave *os.File, err error) {
	path := fmt.Sprintf("/proc/%d/root/dev/pts/ptmx", r.Pid)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	m := os.NewFile(uintptr(fd), path)
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "fstatfs", Path: path, Err: err}
	}
	if st.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, nil, fmt.Errorf("container %s: %s is not on a devpts file system", r.Name, path)
	}
	if !alive(r.Pid, r.StartTime) {
		return nil, nil, fmt.Errorf("container %s: %w", r.Name, ErrNotRunning)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, os.NewSyscallError("ioctl TIOCSPTLCK", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return nil, nil, os.NewSyscallError("ioctl TIOCGPTPEER", errno)
	}
	return m, os.NewFile(sfd, "pty slave"), nil
}
