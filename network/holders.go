package network

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Holders returns the IDs of the containers holding something on the network called name: a
// stored endpoint or an allocated address, sorted. fockker's collector compares them with its
// container records; Disconnect(&Endpoint{ID: id, Network: name, HostVeth: HostVethName(id)})
// releases all of it for an ID whose container is gone.
func (m *Manager) Holders(name string) ([]string, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var ids []string
	err := m.withLock(unix.LOCK_SH, func() error {
		n, err := m.load(name)
		if err != nil {
			return err
		}
		eps, err := m.endpoints(name)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			ids = append(ids, ep.ID)
		}
		alloc, err := m.allocator(n)
		if err != nil {
			return err
		}
		held, err := alloc.Allocations()
		if err != nil {
			return fmt.Errorf("network %s: %w", name, err)
		}
		for _, id := range held {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
