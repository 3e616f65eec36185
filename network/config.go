// Package network manages fockker's container networks: their stored
// configs, address allocation, container attachments and published ports.
//
// State lives under <stateRoot>/network:
//
//	.lock                        flocked by every operation
//	.iptables-cache              the rules last read, while nf_tables says unchanged
//	.spare-cache/address         a released address file, blank, for the next address
//	.spare-cache/endpoint        a removed endpoint file, for the next endpoint
//	<name>/config.json           the network (Network as JSON)
//	<name>/ipam/<ip>             one file per allocated address (see package ipam)
//	<name>/endpoints/<id>.json   one file per attached container (Endpoint as JSON)
//
// The spares are files kept to be renamed into place rather than created
// (see ipam.DiskStore on why); like the cache of the rules they are no
// state, and go with the last network.
//
// Every operation works in the network namespace of the calling thread,
// which is the host's for fockker; a caller that switched namespaces must
// keep its OS thread locked.
package network

import (
	"errors"
	"net/netip"
)

// The default network, created the first time it is needed.
const (
	DefaultName = "fockker0"
	// DefaultSubnet is the default network's subnet; its gateway is
	// 192.168.0.1.
	DefaultSubnet = "192.168.0.0/24"
)

// Names run cannot give to a network: "--net none" and "--net host" mean
// no network of ours.
const (
	NoneName = "none"
	HostName = "host"
)

const (
	dirName      = "network"
	lockFileName = ".lock" // not a valid network name, so no clash
	// iptablesCacheName caches what iptables-save printed (package
	// iptables); it goes with the last network.
	iptablesCacheName = ".iptables-cache"
	// legacyIptablesCacheName is the cache's name in earlier versions, removed with it.
	legacyIptablesCacheName = ".iptables-cache.json"
	configFileName          = "config.json"
	ipamDirName             = "ipam"
	endpointsDir            = "endpoints"
	// spareDirName holds the spare files, shared by every network.
	spareDirName = ".spare-cache"

	maxIDLen = 128
	// vethPrefix + up to 11 characters of the container ID fit in 15 bytes.
	vethPrefix = "veth"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrInvalidName   = errors.New("invalid network name")
	ErrInvalidSubnet = errors.New("invalid subnet")
	ErrInvalidID     = errors.New("invalid container id")
	ErrInvalidPort   = errors.New("invalid port mapping")
	ErrExists        = errors.New("network already exists")
	ErrNotFound      = errors.New("network not found")
	ErrInUse         = errors.New("network has attached containers")
	ErrOverlap       = errors.New("subnet overlaps")
	ErrPoolExhausted = errors.New("no free subnet left in the address pool")
	ErrNameTaken     = errors.New("an interface with this name already exists on the host")
	ErrConnected     = errors.New("container is already connected")
	ErrPortInUse     = errors.New("host port is already in use")
)

// poolPrefixes are carved into /24s when a network is created without a
// subnet: 172.18.0.0 to 172.31.255.255, then 192.168.1.0 to
// 192.168.255.255. 172.17.0.0/16 (Docker's default) and 192.168.0.0/24
// (fockker0) are left out.
func poolPrefixes() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("172.18.0.0/15"),
		netip.MustParsePrefix("172.20.0.0/14"),
		netip.MustParsePrefix("172.24.0.0/13"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
}

// poolCandidates calls yield with each /24 of the pool in order until it
// returns false.
func poolCandidates(yield func(netip.Prefix) bool) {
	reserved := netip.MustParsePrefix(DefaultSubnet)
	for _, p := range poolPrefixes() {
		a := p.Addr()
		for p.Contains(a) {
			c := netip.PrefixFrom(a, 24)
			if c != reserved && !yield(c) {
				return
			}
			b := a.As4()
			b[2]++
			if b[2] == 0 {
				b[1]++
			}
			a = netip.AddrFrom4(b)
		}
	}
}
