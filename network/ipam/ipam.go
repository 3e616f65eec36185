package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// Store keeps the reservations of one range. Every other method is called
// between Lock and Unlock; the lock must exclude other goroutines and other
// processes using the same backing state.
type Store interface {
	Lock() error
	Unlock() error
	// Reserve records ip as held by id. It reports false, with no error, if
	// ip is already reserved.
	Reserve(id string, ip netip.Addr) (bool, error)
	// Release forgets the reservation of ip; releasing a free ip succeeds.
	Release(ip netip.Addr) error
	// Allocations returns every reserved address and the ID holding it.
	Allocations() (map[netip.Addr]string, error)
	// LastReserved returns the address most recently handed out, or the
	// zero Addr if none is recorded.
	LastReserved() (netip.Addr, error)
	SetLastReserved(ip netip.Addr) error
}

// Allocator hands out the addresses of a Range, round-robin from the last
// one handed out, so a just-released address is not reused at once.
type Allocator struct {
	r     Range
	store Store
}

// NewAllocator returns an allocator for r backed by store.
func NewAllocator(r Range, store Store) (*Allocator, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &Allocator{r: r, store: store}, nil
}

// validateID rejects IDs that would not survive a round trip through a
// reservation file.
func validateID(id string) error {
	if id == "" || strings.IndexFunc(id, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

// Allocate reserves a free address for id and returns it. It fails with
// ErrAllocated if id already holds one, and ErrExhausted if none is free.
func (a *Allocator) Allocate(id string) (_ netip.Addr, retErr error) {
	if err := validateID(id); err != nil {
		return netip.Addr{}, err
	}
	if err := a.store.Lock(); err != nil {
		return netip.Addr{}, fmt.Errorf("ipam: lock: %w", err)
	}
	defer func() {
		if err := a.store.Unlock(); err != nil && retErr == nil {
			retErr = fmt.Errorf("ipam: unlock: %w", err)
		}
	}()

	taken, err := a.store.Allocations()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ipam: list allocations: %w", err)
	}
	for ip, owner := range taken {
		if owner == id && a.r.Subnet.Contains(ip) {
			return netip.Addr{}, fmt.Errorf("ipam: %q %w (%s)", id, ErrAllocated, ip)
		}
	}
	last, err := a.store.LastReserved()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ipam: read last reserved address: %w", err)
	}

	start := a.r.First()
	if a.r.Subnet.Contains(last) && last != a.r.Broadcast() {
		start = a.next(last)
	}
	ip := start
	for {
		if a.r.Usable(ip) {
			if _, used := taken[ip]; !used {
				ok, err := a.store.Reserve(id, ip)
				if err != nil {
					return netip.Addr{}, fmt.Errorf("ipam: reserve %s: %w", ip, err)
				}
				if ok {
					if err := a.store.SetLastReserved(ip); err != nil {
						return netip.Addr{}, errors.Join(
							fmt.Errorf("ipam: record last reserved address: %w", err),
							a.store.Release(ip))
					}
					return ip, nil
				}
			}
		}
		ip = a.next(ip)
		if ip == start {
			return netip.Addr{}, fmt.Errorf("ipam: %s: %w", a.r.Subnet, ErrExhausted)
		}
	}
}

// next returns the host address after ip, wrapping from the last to the first.
func (a *Allocator) next(ip netip.Addr) netip.Addr {
	if ip == a.r.Last() || !a.r.Subnet.Contains(ip.Next()) {
		return a.r.First()
	}
	return ip.Next()
}

// Release frees every address id holds. Finding none is success.
func (a *Allocator) Release(id string) (retErr error) {
	if err := validateID(id); err != nil {
		return err
	}
	if err := a.store.Lock(); err != nil {
		return fmt.Errorf("ipam: lock: %w", err)
	}
	defer func() {
		if err := a.store.Unlock(); err != nil && retErr == nil {
			retErr = fmt.Errorf("ipam: unlock: %w", err)
		}
	}()
	taken, err := a.store.Allocations()
	if err != nil {
		return fmt.Errorf("ipam: list allocations: %w", err)
	}
	for ip, owner := range taken {
		if owner != id {
			continue
		}
		if err := a.store.Release(ip); err != nil {
			return fmt.Errorf("ipam: release %s: %w", ip, err)
		}
	}
	return nil
}

// Allocations returns every reserved address and the ID holding it.
func (a *Allocator) Allocations() (_ map[netip.Addr]string, retErr error) {
	if err := a.store.Lock(); err != nil {
		return nil, fmt.Errorf("ipam: lock: %w", err)
	}
	defer func() {
		if err := a.store.Unlock(); err != nil && retErr == nil {
			retErr = fmt.Errorf("ipam: unlock: %w", err)
		}
	}()
	taken, err := a.store.Allocations()
	if err != nil {
		return nil, fmt.Errorf("ipam: list allocations: %w", err)
	}
	return taken, nil
}
