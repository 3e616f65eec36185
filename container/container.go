package container

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/container/security"
	"github.com/FishingRodd/fockker/network"
	"github.com/FishingRodd/fockker/nsenter"
	"golang.org/x/sys/unix"
)

// IO says where a container's standard streams go.
type IO struct {
	Stdin, Stdout, Stderr *os.File // nil means /dev/null
	// Tty: Stdin is the slave of a pseudo-terminal that becomes the controlling terminal.
	Tty bool
	// Log: stdout and stderr go to the container's log file (detached containers).
	Log bool
	// Forked, if set, is called by Create right after the container's init is forked, on the
	// goroutine (and thread) that forked it.
	Forked func()
	// BeforeCommand, if set, is called before the container's command may start: by Create
	// when it sends the command early (see Create), else by Start.
	BeforeCommand func()
}

// ExitError carries the exit code fockker must end with: the container's own, or docker's
// 125/126/127 when the command could not be started.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code to use.
func (e *ExitError) ExitCode() int { return e.Code }

// Container is a container being created and run by this process, its parent.
type Container struct {
	Record *Record
	roots  Roots
	store  *Store
	lock   *Lock
	// install is a shared lock on the state root, held from before the record is reserved
	// until the container started or was destroyed: the collector never sees it half-built.
	install *Lock
	init    *nsenter.Init
	process *nsenter.Process // the init, once started
	cg      *cgroup.Cgroup
	proc    *security.Process // what the container's processes are restricted to
	layers  bool              // the overlay directories are ours to remove
	logf    *os.File
	net     *netPrep // a bridged container's network, prepared from the reservation on
	sent    bool     // the command was sent to the init (Create sends it early when it can)
	// markerDone is closed once the overlay's volatile marker is gone (see Start); nil when
	// nothing removes it in the background.
	markerDone chan struct{}
	// beforeCommand is IO.BeforeCommand, for Start.
	beforeCommand func()
}

// netPrep is a network made ready (the default one created or checked) in the background
// while the rest of the container is built.
type netPrep struct {
	mgr  *network.Manager
	done chan struct{}
	err  error
}

// prepareNetwork starts making the container's network ready.
func (c *Container) prepareNetwork() {
	p := &netPrep{mgr: network.NewManager(c.roots.State), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if c.Record.Spec.Network == network.DefaultName {
			_, p.err = p.mgr.EnsureDefault()
		}
	}()
	c.net = p
}

// newID returns a random 10-digit ID, the form the seed's ps shows.
func newID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(9_000_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d", n.Int64()+1_000_000_000), nil
}

// Create builds a container up to the point where its init waits to exec the user's command:
// record reserved, layers made, cgroup with limits, init cloned into new mount, UTS, IPC,
// PID and network namespaces, root filesystem ready. On any failure everything it made is
// removed again. The record stays locked until Start or Destroy.
func Create(roots Roots, spec Spec, stdio IO) (c *Container, err error) {
	if err := roots.Validate(); err != nil {
		return nil, err
	}
	if len(spec.Args) == 0 {
		return nil, errors.New("no command given and the image has none")
	}
	// What the container's processes are restricted to, computed before anything exists.
	proc, err := spec.Security.Process()
	if err != nil {
		return nil, err
	}
	install, err := lockInstall(roots.State, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer func() {
		if c == nil {
			install.Unlock() // failed before there was a container to destroy
		}
	}()
	lower, err := EnsureImage(roots, spec.Image)
	if err != nil {
		return nil, err
	}
	store := NewStore(roots.State)
	rec := &Record{
		Command:     spec.Args,
		CreateTime:  time.Now().Format(timeLayout),
		Status:      Created,
		Volume:      []string{},
		PortMapping: []string{},
		NetworkName: spec.Network,
		Spec:        spec,
	}
	if spec.Detach {
		// This process is the watcher: recorded from the start, so that the collector can
		// tell it from the watchers of containers that have no record.
		rec.WatcherPid = os.Getpid()
	}
	for _, p := range spec.Ports {
		rec.PortMapping = append(rec.PortMapping, p.String())
	}
	for _, v := range spec.Volumes {
		rec.Volume = append(rec.Volume, v.String())
	}
	var lock *Lock
	for attempt := 0; ; attempt++ {
		if rec.ID, err = newID(); err != nil {
			return nil, err
		}
		rec.Name = spec.Name
		if rec.Name == "" {
			rec.Name = rec.ID
		}
		if rec.Spec.Hostname == "" {
			rec.Spec.Hostname = rec.Name
		}
		if err := ValidateName("container", rec.Name); err != nil {
			return nil, err
		}
		lock, err = store.Reserve(rec)
		if err == nil {
			break
		}
		if spec.Name != "" || !errors.Is(err, ErrNameInUse) || attempt == 5 {
			return nil, err
		}
	}
	c = &Container{Record: rec, roots: roots, store: store, lock: lock, install: install, proc: proc,
		beforeCommand: stdio.BeforeCommand}
	// The user is looked up now, in the image itself, when nothing the container mounts can
	// hide the image's user database (no volumes, see userFromImage): its init then never
	// waits for it. Two small files: a goroutine would cost more in wake-ups than they do.
	inImage := userFromImage(lower, spec.Volumes)
	var imageID security.Identity
	var imageIDErr error
	if inImage {
		imageID, imageIDErr = security.ResolveUserIn(lower, proc.User)
	}
	defer func() {
		if err != nil {
			c.Destroy()
		}
	}()
	pauseAt(pauseRunReserved)
	if spec.bridged() {
		c.prepareNetwork()
	}

	// The layer directories are made while the cgroup is claimed and the init cloned into
	// it: the init waits for the description of its root until they exist.
	layersDone := make(chan error, 1)
	go func() { layersDone <- createLayers(roots, rec.Name) }()
	waitLayers := func() error {
		if layersDone == nil {
			return nil
		}
		err := <-layersDone
		layersDone = nil
		c.layers = err == nil
		return err
	}
	defer waitLayers() // never leave it running under a rollback
	cg, err := c.claimCgroup()
	if err != nil {
		return c, err
	}
	// The cgroup is completed (its other hierarchies, its limits) once the root is sent,
	// while the init builds it; started earlier, it competed for the CPUs with the init's
	// clone and the layers, which the root waits for.
	var cgDone chan error
	defer func() {
		if cgDone != nil {
			<-cgDone // never leave it running under a rollback
		}
	}()

	if stdio.Log {
		f, err := os.OpenFile(roots.LogPath(rec.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return c, err
		}
		c.logf = f
		stdio.Stdout, stdio.Stderr = f, f
	}
	if err := c.startInit(stdio, lower); err != nil {
		return c, err
	}
	if err := waitLayers(); err != nil {
		return c, err
	}
	pauseAt(pauseRunLayers)
	if err := c.init.SendRoot(); err != nil {
		return c, err
	}
	cgDone = make(chan error, 1)
	go func() { cgDone <- cg.Complete() }()
	// The network needs the init's namespace, not its root: it is attached while the init
	// builds the root.
	var netDone chan attached
	if spec.bridged() {
		netDone = make(chan attached, 1)
		go func() {
			ep, err := c.attachNetwork()
			netDone <- attached{ep, err}
		}()
		defer func() {
			if netDone != nil {
				<-netDone // never leave it running under a rollback
			}
		}()
	}
	// Recorded at once: whatever happens to us from now on, ps can tell whether the
	// container lives, and rm can kill it.
	if rec.StartTime, err = StartTime(rec.Pid); err != nil {
		return c, fmt.Errorf("container init: %w", err)
	}
	if err := store.Save(rec); err != nil {
		return c, err
	}
	pauseAt(pauseRunInit)
	cgErr := <-cgDone
	cgDone = nil
	var netErr error
	if netDone != nil {
		a := <-netDone
		netDone = nil
		if a.ep != nil { // recorded here, not by the goroutine: the record was being saved
			rec.Endpoint, rec.IP = a.ep, a.ep.IP.String()
		}
		netErr = a.err
	}
	// With the cgroup complete and the network attached, nothing of the container is
	// missing but its root, which the init is building: when the user is already known
	// (looked up in the image), the command is sent now. The init reads it as soon as it has
	// built the root and reported ready, instead of waiting for this process to see the
	// report and write the command (~0.5 ms per run).
	var sendErr error
	if cgErr == nil {
		pauseAt(pauseRunCgroup)
	}
	if cgErr == nil && netErr == nil {
		if spec.bridged() {
			pauseAt(pauseRunNetwork)
		}
		if inImage && imageIDErr == nil {
			rec.User = &imageID
			sendErr = c.sendCommand()
		}
	}
	readyErr := c.init.Ready()
	switch {
	case readyErr != nil:
		return c, initError(readyErr) // the init's own exit code and reason
	case cgErr != nil:
		return c, cgErr
	case netErr != nil:
		return c, netErr
	case sendErr != nil:
		return c, initError(sendErr)
	}
	// The user is looked up in the container's own /etc/passwd and /etc/group, as runc does:
	// in its root (volumes included) now that it is built, unless the image's were already
	// known to be what the container sees.
	var id security.Identity
	id, err = imageID, imageIDErr
	if !inImage {
		id, err = security.ResolveUserIn(fmt.Sprintf("/proc/%d/root", rec.Pid), proc.User)
	}
	if err != nil {
		return c, fmt.Errorf("user %q: %w", proc.User, err)
	}
	rec.User = &id
	// User, address and endpoint reach the record with the start (Start saves it): a creator
	// that dies before leaves a record whose endpoint rm finds by the container's ID.
	return c, nil
}

// userFromImage says whether a new container sees its image's own /etc/passwd and /etc/group
// (lower is the image's directory): its upper layer starts empty, so it does unless a volume is
// bound into it (a volume's target is resolved in the container's root, through the image's
// symlinks and the volumes bound before it, so any volume may end up on /etc) or a symlink in
// the image leads the files elsewhere.
func userFromImage(lower string, volumes []Volume) bool {
	if len(volumes) > 0 {
		return false
	}
	for _, p := range [...]string{"/etc", security.PasswdPath, security.GroupPath} {
		fi, err := os.Lstat(lower + p)
		if err != nil && !errors.Is(err, os.ErrNotExist) || err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return false
		}
	}
	return true
}

// claimCgroup validates the container's limits and claims its cgroup: on cgroup v2 made
// whole, with its limits, for the init to be cloned into; on v1 the claim directory only. It
// is completed in the other v1 hierarchies while the init builds its root; the init joins
// those once they are complete, before its command runs. The claimed cgroup is c.cg.
func (c *Container) claimCgroup() (*cgroup.Cgroup, error) {
	spec := c.Record.Spec
	limits := spec.Limits
	limits.AllDevices = spec.Security.Privileged
	cg, err := cgroup.New(spec.CgroupParent, c.Record.Name, limits)
	if err != nil {
		return nil, err
	}
	if err := cg.Claim(); err != nil {
		return nil, err
	}
	c.cg = cg
	return cg, nil
}

// startInit starts the container's init in new namespaces (the init constructor of package
// nsenter: no Go runtime starts in it), on cgroup v2 right in its cgroup. The init builds
// the root, then waits for its command; it joins the v1 cgroups before it runs it.
func (c *Container) startInit(stdio IO, lower string) error {
	rec := c.Record
	overlay := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, c.roots.UpperDir(rec.Name), c.roots.WorkDir(rec.Name))
	if rec.Spec.AutoRemove {
		// The layers of a --rm container are deleted when it exits, and are garbage after a
		// crash: nothing is lost if the overlay never syncs them (its unmount would otherwise
		// sync the whole file system under them, on the path the user waits on).
		overlay += ",volatile"
	}
	cfg := &nsenter.InitConfig{
		Overlay:      overlay,
		Root:         c.roots.MountPoint(),
		Hostname:     rec.Spec.Hostname,
		Cwd:          rec.Spec.WorkingDir,
		Tty:          stdio.Tty,
		Loopback:     rec.Spec.ownNet(),
		Restrict:     !c.proc.Privileged,
		ReadOnlyRoot: c.proc.ReadOnlyRootfs,
		Cgroups:      c.cgroupV1Dirs(),
	}
	v2, err := c.cgroupFD()
	if err != nil {
		return err
	}
	defer v2.Close()
	if cfg.Restrict {
		cfg.MaskedPaths, cfg.ReadonlyPaths = security.MaskedPaths(), security.ReadonlyPaths()
	}
	for _, v := range rec.Spec.Volumes {
		// A missing host directory is created, as the seed does; a host path that cannot
		// be looked up is refused here, before the container has anything.
		if _, err := os.Stat(v.Host); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(v.Host, 0o755); err != nil {
				return fmt.Errorf("volume %s: create host directory: %w", v, err)
			}
		} else if err != nil {
			return fmt.Errorf("volume %s: %w", v, err)
		}
		cfg.Volumes = append(cfg.Volumes, nsenter.Bind{Source: v.Host, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	in, err := nsenter.NewInit("/proc/self/exe", cfg)
	if err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID)
	if rec.Spec.ownNet() {
		flags |= unix.CLONE_NEWNET
	}
	sys := &syscall.SysProcAttr{
		Cloneflags: flags,
		Setsid:     true,
		Setctty:    stdio.Tty,
		Ctty:       0,
		// The container lives no longer than its parent (the CLI or the watcher).
		Pdeathsig: unix.SIGKILL,
	}
	if v2 != nil {
		sys.UseCgroupFD = true
		sys.CgroupFD = int(v2.Fd())
	}
	p, err := in.Start([3]*os.File{stdio.Stdin, stdio.Stdout, stdio.Stderr}, sys)
	if err != nil {
		in.Close()
		return fmt.Errorf("start container init: %w", err)
	}
	c.init, c.process = in, p
	rec.Pid = p.Pid
	if stdio.Forked != nil {
		stdio.Forked()
	}
	return nil
}

// cgroupFD opens the container's cgroup v2 directory (nil if the host has none), to clone
// the init into: the kernel then never moves a running process between v2 cgroups, which
// costs a full RCU grace period (~10 ms) per container.
func (c *Container) cgroupFD() (*os.File, error) {
	if _, ok := c.cg.Paths()[""]; !ok {
		return nil, nil
	}
	return c.cg.OpenFD()
}

// cgroupV1Dirs are the container's cgroups in v1 hierarchies, which its init joins itself
// (through their "tasks" files, see nsenter/init.c) once they are complete.
func (c *Container) cgroupV1Dirs() []nsenter.CgroupDir {
	parent := c.Record.Spec.CgroupParent
	if parent == "" {
		parent = cgroup.DefaultParent
	}
	inner := "/" + parent + "/" + c.Record.Name
	var dirs []nsenter.CgroupDir
	for key, dir := range c.cg.Paths() {
		if key == "" { // the unified (v2) hierarchy: the init is cloned into it
			continue
		}
		dirs = append(dirs, nsenter.CgroupDir{Hierarchy: strings.TrimSuffix(dir, inner), Path: strings.TrimPrefix(inner, "/")})
	}
	slices.SortFunc(dirs, func(a, b nsenter.CgroupDir) int { return strings.Compare(a.Hierarchy, b.Hierarchy) })
	return slices.CompactFunc(dirs, func(a, b nsenter.CgroupDir) bool { return a == b })
}

// initError turns what the init reported into the exit code and message fockker ends with.
func initError(err error) error {
	var ie *nsenter.InitError
	if errors.As(err, &ie) {
		return &ExitError{Code: ie.Code, Err: errors.New(ie.Msg)}
	}
	if errors.Is(err, io.EOF) {
		return errors.New("container init: exited before it was ready")
	}
	return fmt.Errorf("container init: %w", err)
}

// attached is what attachNetwork ends with.
type attached struct {
	ep  *network.Endpoint
	err error
}

// attachNetwork frees the ports of dead containers nobody recorded as stopped (when this one
// publishes ports), then connects the container to its network. It reads the record, never
// writes it (the caller records the endpoint).
func (c *Container) attachNetwork() (*network.Endpoint, error) {
	if len(c.Record.Spec.Ports) > 0 {
		if err := releaseStalePorts(c.roots); err != nil {
			return nil, err
		}
	}
	return c.connect()
}

// connect attaches the parked init's network namespace to the container's network (the
// default one is created on first use, or rebuilt from its config if its bridge vanished).
func (c *Container) connect() (*network.Endpoint, error) {
	<-c.net.done
	if c.net.err != nil {
		return nil, c.net.err
	}
	ep, err := c.net.mgr.Connect(c.Record.Spec.Network, c.Record.ID, c.Record.Pid, c.Record.Spec.Ports)
	if err != nil {
		return nil, fmt.Errorf("container %s: network %s: %w", c.Record.Name, c.Record.Spec.Network, err)
	}
	return ep, nil
}

// Start lets the init exec the user's command (sending it, unless Create did) and returns
// once the exec has happened (or failed, with docker's 126/127 exit code). The record then
// says running.
func (c *Container) Start() error {
	var err error
	if !c.sent {
		err = c.sendCommand()
	}
	if err == nil {
		err = c.init.Executed()
	}
	c.init.Close()
	if err != nil {
		return initError(err)
	}
	c.Record.Status = Running
	c.Record.StartedAt = time.Now().Format(time.RFC3339Nano)
	if err := c.store.Save(c.Record); err != nil {
		return err
	}
	c.lock.Unlock()
	c.install.Unlock()
	if rec := c.Record; rec.Spec.AutoRemove && c.layers {
		// The volatile overlay of a --rm container marked its work directory when it was
		// mounted (removeVolatileMarker): the marker goes now, while the command runs, not
		// on the path of the removal, where each of its two directories waits for its
		// block's discard on a disk mounted with discard (~0.15 ms each). What is left then
		// (an error here) goes with the rest of the work directory.
		c.markerDone = make(chan struct{})
		go func() {
			defer close(c.markerDone)
			_ = dropVolatileMarker(c.roots.WorkDir(rec.Name))
		}()
	}
	pauseAt(pauseRunStarted)
	return nil
}

// waitMarker waits until the background removal of the volatile marker (see Start), if any,
// is done: the work directory is then only the removal's.
func (c *Container) waitMarker() {
	if c.markerDone != nil {
		<-c.markerDone
	}
}

// sendCommand sends the init the container's command, which it runs once its root is built
// and it has joined its cgroups.
func (c *Container) sendCommand() error {
	if c.beforeCommand != nil {
		c.beforeCommand()
	}
	pauseAt(pauseRunBeforeStart)
	rec := c.Record
	env := rec.Spec.Env
	if envValue(env, "HOME") == "" {
		env = MergeEnv(env, []string{"HOME=" + rec.User.Home})
	}
	cfg := &nsenter.Config{
		Pid:        rec.Pid,
		StartTime:  rec.StartTime,
		Namespaces: rec.namespaces(),
		Cwd:        rec.Spec.WorkingDir,
		Env:        env,
		Args:       rec.Spec.Args,
	}
	restrict(cfg, c.proc, *rec.User)
	c.sent = true
	return c.init.SendCommand(cfg)
}

// Wait waits for the container's init to exit and returns its exit code.
func (c *Container) Wait() int {
	ws, err := c.process.Wait()
	c.process.Release()
	if c.logf != nil {
		c.logf.Close()
	}
	if err != nil {
		return ExitEngine
	}
	return waitCode(ws)
}

// ExitCodeOf is a finished process's exit code, 128+N for a death by signal N, as shells
// report it.
func ExitCodeOf(ps *os.ProcessState) int {
	if ps == nil {
		return ExitEngine
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitCode(ws)
	}
	return ps.ExitCode()
}

// waitCode is the exit code of a wait status: 128+N for a death by signal N.
func waitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Signaled():
		return 128 + int(ws.Signal())
	case ws.Exited():
		return ws.ExitStatus()
	}
	return ExitEngine
}

// Finish records the exit of a container this process waited for, and removes the container
// when it was started with --rm. A container removed meanwhile (rm -f) is not an error.
func (c *Container) Finish(code int) error {
	c.waitMarker()
	return finish(c.roots, c.Record, code, c.cg)
}

// errReplaced: the record under the name now belongs to another container.
var errReplaced = errors.New("record replaced by another container")

// finish records that the container rec ended with code (releasing its published ports and
// noting an OOM kill from its cgroup cg, if known), then removes it if it was run with --rm.
// A container removed, or replaced under its name, meanwhile is left alone.
func finish(roots Roots, rec *Record, code int, cg *cgroup.Cgroup) error {
	if rec.Spec.AutoRemove {
		// Straight to removal: the record would only be deleted right after.
		err := remove(roots, rec.Name, true, rec, cg)
		if errors.Is(err, ErrNotFound) || errors.Is(err, errReplaced) {
			return nil
		}
		return err
	}
	_, err := NewStore(roots.State).Update(rec.Name, func(r *Record) error {
		if r.ID != rec.ID {
			return errReplaced
		}
		if err := releasePorts(roots, r); err != nil {
			return err
		}
		r.Status = Stopped
		r.ExitCode = &code
		r.FinishedAt = time.Now().Format(time.RFC3339Nano)
		if cg != nil && code == 128+int(unix.SIGKILL) {
			n, err := cg.OOMKills()
			if err != nil {
				return err
			}
			r.OOMKilled = n > 0
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, errReplaced) {
		return nil
	}
	return err
}

// Destroy undoes Create: kills init if it runs, removes the cgroup, the layers and the record.
func (c *Container) Destroy() error {
	c.waitMarker()
	var errs []error
	if c.net != nil {
		<-c.net.done // the network may still be being made ready
	}
	if c.init != nil {
		c.init.Close()
	}
	if c.process != nil {
		_ = c.process.Signal(unix.SIGKILL) // it may have exited already; Wait tells
		_, _ = c.process.Wait()
		c.process.Release()
		c.process = nil
	}
	if c.logf != nil {
		c.logf.Close()
	}
	// The recorded endpoint, or whatever the network holds under the container's ID (a
	// connect that failed halfway and whose own rollback failed too).
	if ep := attachment(c.Record); ep != nil {
		if err := network.NewManager(c.roots.State).Disconnect(ep); err != nil {
			errs = append(errs, err)
		}
	}
	if c.cg != nil {
		if err := c.cg.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.layers {
		if err := removeLayers(c.roots, c.Record.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.store.Delete(c.Record.Name); err != nil {
		errs = append(errs, err)
	}
	c.lock.Unlock()
	c.install.Unlock()
	return errors.Join(errs...)
}

// Signal sends sig to the container's init (the CLI forwards the signals it receives).
func (c *Container) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if c.process == nil || !ok {
		return ErrNotRunning
	}
	return c.process.Signal(s)
}
