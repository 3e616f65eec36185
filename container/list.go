package container

import (
	"fmt"
)

// State is what a record says reconciled with the kernel: a container recorded as running
// whose PID is gone, or now belongs to another process, is stopped. So is the container of a
// damaged record, as far as anyone can tell: nothing of it is known to be alive (removing it
// fails while a process is left in its cgroup).
func State(rec *Record) Status {
	switch rec.Status {
	case Running, Created:
		if !alive(rec.Pid, rec.StartTime) {
			return Stopped
		}
	case Damaged:
		return Stopped
	}
	return rec.Status
}

// state is what ps shows: State, except that a damaged record is shown as such, and for a
// record still without a process (its init not yet cloned), whether its creator is at work
// on it (holding its lock) or gone.
func (s *Store) state(rec *Record) Status {
	if rec.Status == Damaged {
		return Damaged
	}
	st := State(rec)
	if st == Stopped && rec.Status == Created && rec.Pid == 0 && s.busy(rec.Name) {
		return Created
	}
	return st
}

// List returns all containers of an installation with their reconciled status.
func List(roots Roots) ([]*Record, error) {
	store := NewStore(roots.State)
	recs, err := store.List()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		r.Status = store.state(r)
	}
	return recs, nil
}

// Lookup resolves a name, ID or unique ID prefix and returns the reconciled record.
func Lookup(roots Roots, ref string) (*Record, error) {
	store := NewStore(roots.State)
	name, err := store.Resolve(ref)
	if err != nil {
		return nil, err
	}
	rec, err := store.Load(name)
	if err != nil {
		return nil, err
	}
	rec.Status = store.state(rec)
	return rec, nil
}

// RunningRecord returns the record of a container that is running now, or ErrNotRunning.
func RunningRecord(roots Roots, ref string) (*Record, error) {
	rec, err := Lookup(roots, ref)
	if err != nil {
		return nil, err
	}
	if rec.Status != Running {
		return nil, fmt.Errorf("container %s: %w", rec.Name, ErrNotRunning)
	}
	return rec, nil
}
