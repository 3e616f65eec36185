package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds retries of netlink dumps interrupted by concurrent
// changes (NLM_F_DUMP_INTR).
const dumpRetries = 5

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// retryDump calls dump until it is not interrupted, a few times at most.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		out T
		err error
	)
	for range dumpRetries {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

// LinkExists reports whether an interface called name exists where nl
// works.
func LinkExists(nl *netlink.Handle, name string) (bool, error) {
	_, err := nl.LinkByName(name)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("look up interface %s: %w", name, err)
}

// Occupied is an IPv4 prefix in use on the host, and what uses it.
type Occupied struct {
	Prefix netip.Prefix
	What   string // e.g. "address 10.0.0.1/24 on eth0"
}

// HostPrefixes lists the prefixes of every IPv4 address and main-table
// route (the default route aside) where nl works, leaving out those of the
// interface called skip.
func HostPrefixes(nl *netlink.Handle, skip string) ([]Occupied, error) {
	links, err := retryDump(nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []Occupied
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return nl.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		q, ok := prefixOf(a.IPNet)
		if !ok || (skip != "" && names[a.LinkIndex] == skip) {
			continue
		}
		out = append(out, Occupied{q.Masked(), fmt.Sprintf("address %s on %s", q, names[a.LinkIndex])})
	}
	routes, err := retryDump(func() ([]netlink.Route, error) { return nl.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		q, ok := prefixOf(r.Dst)
		if !ok || q.Bits() == 0 || (skip != "" && names[r.LinkIndex] == skip) {
			continue
		}
		out = append(out, Occupied{q.Masked(), fmt.Sprintf("route %s dev %s", q.Masked(), names[r.LinkIndex])})
	}
	return out, nil
}

// HostConflict describes the first address or route of HostPrefixes that
// overlaps p, or returns "" if none does.
func HostConflict(nl *netlink.Handle, p netip.Prefix, skip string) (string, error) {
	occ, err := HostPrefixes(nl, skip)
	if err != nil {
		return "", err
	}
	for _, o := range occ {
		if o.Prefix.Overlaps(p) {
			return o.What, nil
		}
	}
	return "", nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// setupVeth creates the veth pair of ep inside containerNS with its host
// end moved straight into the host namespace, attaches the host end to br
// and brings it up, then gives the container end its address and brings up
// it and lo, with a default route via the gateway. On failure the pair is
// removed (deleting one end deletes both).
func setupVeth(host Host, br netlink.Link, n NetworkConfig, ep EndpointConfig, containerNS netns.NsHandle) (retErr error) {
	if containerNS.Equal(host.NS) {
		return ErrSameNamespace
	}
	cnl, err := netlink.NewHandleAt(containerNS)
	if err != nil {
		return fmt.Errorf("netlink handle in container namespace: %w", err)
	}
	defer cnl.Close()

	attrs := netlink.NewLinkAttrs()
	attrs.Name = ep.IfName
	attrs.MTU = br.Attrs().MTU
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ep.HostVeth, PeerNamespace: netlink.NsFd(host.NS)}
	if err := cnl.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create veth pair %s/%s: %w: %s in the container or %s on the host",
				ep.IfName, ep.HostVeth, ErrLinkExists, ep.IfName, ep.HostVeth)
		}
		return fmt.Errorf("create veth pair %s/%s: %w", ep.IfName, ep.HostVeth, err)
	}
	defer func() {
		if retErr != nil {
			if l, err := cnl.LinkByName(ep.IfName); err == nil {
				retErr = errors.Join(retErr, cnl.LinkDel(l))
			}
		}
	}()

	hostEnd, err := host.Link.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("find host end %s: %w", ep.HostVeth, err)
	}
	if err := host.Link.LinkSetMaster(hostEnd, br); err != nil {
		return fmt.Errorf("attach %s to bridge %s: %w", ep.HostVeth, br.Attrs().Name, err)
	}
	// A container reaching its own published port through a host address
	// gets its packets back through its own port when bridged traffic
	// passes iptables (br_netfilter); the bridge only allows that in
	// hairpin mode.
	if err := host.Link.LinkSetHairpin(hostEnd, true); err != nil {
		return fmt.Errorf("set hairpin mode on %s: %w", ep.HostVeth, err)
	}
	if err := host.Link.LinkSetUp(hostEnd); err != nil {
		return fmt.Errorf("bring up %s: %w", ep.HostVeth, err)
	}

	ctrEnd, err := cnl.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("find container end %s: %w", ep.IfName, err)
	}
	addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(ep.IP, n.Subnet.Bits()))}
	if err := cnl.AddrAdd(ctrEnd, addr); err != nil {
		return fmt.Errorf("add address %s to container %s: %w", addr.IPNet, ep.IfName, err)
	}
	if err := cnl.LinkSetUp(ctrEnd); err != nil {
		return fmt.Errorf("bring up container %s: %w", ep.IfName, err)
	}
	lo, err := cnl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find container lo: %w", err)
	}
	if err := cnl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up container lo: %w", err)
	}
	route := &netlink.Route{
		LinkIndex: ctrEnd.Attrs().Index,
		Scope:     netlink.SCOPE_UNIVERSE,
		Gw:        n.Gateway.AsSlice(),
	}
	if err := cnl.RouteAdd(route); err != nil {
		return fmt.Errorf("add default route via %s in container: %w", n.Gateway, err)
	}
	return nil
}

// deleteVeth removes the host end called name, and with it the container
// end. A missing interface is success; an interface of that name that is
// not a veth is left alone and reported.
func deleteVeth(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if l.Type() != "veth" {
		return fmt.Errorf("%w: %s is a %s, not a veth: not removing it", ErrLinkExists, name, l.Type())
	}
	if err := nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// writeSysctl sets a sysctl of the calling thread's network namespace,
// e.g. "net/ipv4/ip_forward", if it is not already set to value.
func writeSysctl(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	cur, err := os.ReadFile(path)
	if err == nil && string(cur) == value+"\n" {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
