// Package ipam hands out IPv4 addresses of a subnet to containers, host-local
// style: one file per allocated address, under a directory-wide file lock.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// File names inside a store directory. Neither parses as an IP address, so
// they never collide with a reservation file.
const (
	lockFileName         = "lock"
	lastReservedFileName = "last_reserved_ip"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrExhausted means every usable address of the range is taken.
	ErrExhausted = errors.New("no free address left in range")
	// ErrAllocated means the ID already holds an address in this range.
	ErrAllocated = errors.New("already holds an address")
	// ErrInvalidRange means the subnet or gateway cannot be used.
	ErrInvalidRange = errors.New("invalid address range")
	// ErrInvalidID means an owner ID is empty or contains whitespace.
	ErrInvalidID = errors.New("invalid owner id")
)

// Range is the subnet addresses are allocated from. The network address,
// the broadcast address and the gateway are never handed out.
type Range struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// Validate checks that r is an IPv4 subnet in canonical form, with room for
// at least one address besides network, gateway and broadcast (so /30 at
// most), and that the gateway is a host address inside it.
func (r Range) Validate() error {
	if !r.Subnet.IsValid() || !r.Subnet.Addr().Is4() {
		return fmt.Errorf("%w: subnet %q is not an IPv4 prefix", ErrInvalidRange, r.Subnet)
	}
	if r.Subnet.Masked() != r.Subnet {
		return fmt.Errorf("%w: subnet %s has host bits set (network is %s)", ErrInvalidRange, r.Subnet, r.Subnet.Masked())
	}
	if r.Subnet.Bits() > 30 {
		return fmt.Errorf("%w: subnet %s is too small, /30 is the narrowest", ErrInvalidRange, r.Subnet)
	}
	if !r.Gateway.Is4() || !r.Subnet.Contains(r.Gateway) || r.Gateway == r.Network() || r.Gateway == r.Broadcast() {
		return fmt.Errorf("%w: gateway %s is not a host address of %s", ErrInvalidRange, r.Gateway, r.Subnet)
	}
	return nil
}

// Network returns the subnet's network address.
func (r Range) Network() netip.Addr { return r.Subnet.Masked().Addr() }

// Broadcast returns the subnet's broadcast address.
func (r Range) Broadcast() netip.Addr {
	a := r.Network().As4()
	host := uint32(1)<<(32-r.Subnet.Bits()) - 1
	v := be32(a) | host
	return netip.AddrFrom4(put32(v))
}

// First returns the lowest host address of the subnet.
func (r Range) First() netip.Addr { return r.Network().Next() }

// Last returns the highest host address of the subnet.
func (r Range) Last() netip.Addr { return r.Broadcast().Prev() }

// Usable reports whether ip may be handed out: inside the subnet and neither
// the network, the broadcast nor the gateway address.
func (r Range) Usable(ip netip.Addr) bool {
	return ip.Is4() && r.Subnet.Contains(ip) && ip != r.Network() && ip != r.Broadcast() && ip != r.Gateway
}

// Size returns how many addresses Usable accepts.
func (r Range) Size() uint64 {
	return uint64(1)<<(32-r.Subnet.Bits()) - 3
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func put32(v uint32) [4]byte {
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}
