package container

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/network"
	"golang.org/x/sys/unix"
)

// signalInit sends sig to the container's init, but only if the PID still is that process: the
// pidfd pins the process, and the start time is checked after it is pinned.
func signalInit(rec *Record, sig unix.Signal) error {
	if rec.Pid <= 0 {
		return ErrNotRunning
	}
	fd, err := unix.PidfdOpen(rec.Pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return ErrNotRunning
	}
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	if !alive(rec.Pid, rec.StartTime) {
		return ErrNotRunning
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNotRunning
		}
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// waitGone polls until the container's init is gone or the deadline passes.
func waitGone(rec *Record, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		if !alive(rec.Pid, rec.StartTime) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
}

// Stop sends SIGTERM to a running container, then SIGKILL after timeout, and waits until it
// is gone. It reports false (and no error) when the container was not running.
func Stop(roots Roots, ref string, timeout time.Duration) (*Record, bool, error) {
	rec, err := Lookup(roots, ref)
	if err != nil {
		return nil, false, err
	}
	if rec.Status != Running && rec.Status != Created {
		return rec, false, nil
	}
	if err := signalInit(rec, unix.SIGTERM); errors.Is(err, ErrNotRunning) {
		return rec, false, nil
	} else if err != nil {
		return rec, false, err
	}
	pauseAt(pauseStopSignalled)
	if !waitGone(rec, timeout) {
		if err := signalInit(rec, unix.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
			return rec, false, err
		}
		if !waitGone(rec, 10*time.Second) {
			return rec, false, fmt.Errorf("container %s: still running after SIGKILL", rec.Name)
		}
	}
	pauseAt(pauseStopExited)
	return rec, true, settle(roots, rec)
}

// settle gives the container's parent (watcher or CLI) a moment to record the exit, and
// records it itself when that parent is gone.
func settle(roots Roots, rec *Record) error {
	store := NewStore(roots.State)
	deadline := time.Now().Add(2 * time.Second)
	for {
		cur, err := store.Load(rec.Name)
		if errors.Is(err, ErrNotFound) {
			return nil // removed (--rm)
		}
		if err != nil {
			return err
		}
		if cur.Status == Stopped || cur.ID != rec.ID {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := store.Update(rec.Name, func(r *Record) error {
		if r.ID == rec.ID && r.Status != Stopped {
			if err := releasePorts(roots, r); err != nil {
				return err
			}
			r.Status = Stopped
			r.FinishedAt = time.Now().Format(time.RFC3339Nano)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Remove deletes a container: its network attachment, its cgroup, its layer directories and its
// record. A running container is refused unless force is set, in which case it is killed
// first. Each step is idempotent, so a container whose creation or an earlier removal was
// killed halfway (with or without layers, cgroup or endpoint) is removed all the same.
func Remove(roots Roots, ref string, force bool) error {
	name, err := NewStore(roots.State).Resolve(ref)
	if err != nil {
		return err
	}
	return remove(roots, name, force, nil, nil)
}

// remove removes the container recorded under name. With mine set (the record of a container
// this process created, as it last saved it), only if the record still belongs to that
// container (errReplaced otherwise). cg is the container's cgroup when the caller has it (it
// created the container), else nil: it is then found again.
func remove(roots Roots, name string, force bool, mine *Record, cg *cgroup.Cgroup) error {
	store := NewStore(roots.State)
	lk, err := store.Lock(name)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	rec, err := store.LoadKnown(name, mine)
	if err != nil {
		return err
	}
	if mine != nil && rec.ID != mine.ID {
		return errReplaced
	}
	if State(rec) != Stopped {
		if !force {
			return fmt.Errorf("container %s: %w (stop it first or use rm -f)", name, ErrRunning)
		}
		if err := signalInit(rec, unix.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
			return err
		}
		if !waitGone(rec, 10*time.Second) {
			return fmt.Errorf("container %s: still running after SIGKILL", name)
		}
	}
	pauseAt(pauseRmKilled)
	// The network attachment, the cgroup and the layers do not depend on each other: they
	// are released in parallel (the record goes last, once all of them are gone).
	var wg sync.WaitGroup
	var netErr, cgErr, layerErr error
	if ep := attachment(rec); ep != nil {
		wg.Go(func() { netErr = network.NewManager(roots.State).Disconnect(ep) })
	}
	wg.Go(func() { layerErr = removeLayers(roots, name) })
	if cg == nil {
		cg, cgErr = cgroup.Load(rec.Spec.CgroupParent, name)
	}
	if cgErr == nil {
		cgErr = cg.Destroy()
	}
	wg.Wait()
	if err := errors.Join(netErr, cgErr, layerErr); err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	pauseAt(pauseRmReleased)
	return store.Delete(name)
}

// attachment is what a container may hold on its network: its recorded endpoint or, when its
// creator died before recording one, whatever the network has under its ID (an address, a
// stored endpoint, a veth, port rules), which Disconnect finds by the ID. Nil without a
// network of ours.
func attachment(rec *Record) *network.Endpoint {
	if rec.Endpoint != nil {
		return rec.Endpoint
	}
	if !rec.Spec.bridged() || network.ValidateName(rec.Spec.Network) != nil || rec.ID == "" {
		return nil
	}
	return &network.Endpoint{ID: rec.ID, Network: rec.Spec.Network, HostVeth: network.HostVethName(rec.ID)}
}

// releaseStalePorts records as stopped every container whose record says running but whose
// init is gone without its parent having recorded the exit (a watcher killed by SIGKILL takes
// init along through the parent-death signal), freeing its published ports as settle would.
// Otherwise such a container, shown stopped by ps, would hold its host ports until rm.
func releaseStalePorts(roots Roots) error {
	store := NewStore(roots.State)
	recs, err := store.List()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		// Only records saved as running: a "created" one belongs to a run still setting it up.
		if rec.Status != Running || rec.Endpoint == nil || len(rec.Endpoint.Ports) == 0 || alive(rec.Pid, rec.StartTime) {
			continue
		}
		_, err := store.Update(rec.Name, func(r *Record) error {
			if r.ID != rec.ID || r.Status != Running || alive(r.Pid, r.StartTime) {
				return nil
			}
			if err := releasePorts(roots, r); err != nil {
				return err
			}
			r.Status = Stopped
			r.FinishedAt = time.Now().Format(time.RFC3339Nano)
			return nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// releasePorts frees a stopped container's published ports (its IP stays until rm), also when
// its creator died before recording its endpoint.
func releasePorts(roots Roots, r *Record) error {
	if len(r.Spec.Ports) == 0 || (r.Endpoint != nil && len(r.Endpoint.Ports) == 0) {
		return nil
	}
	ep := attachment(r)
	if ep == nil {
		return nil
	}
	if err := network.NewManager(roots.State).ReleasePorts(ep); err != nil {
		return fmt.Errorf("container %s: release ports: %w", r.Name, err)
	}
	return nil
}
