package driver

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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
	cnl, err := netlink.NewHandleAt(containerNS, unix.NETLINK_ROUTE)
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
//
// When the container's processes are gone (exited), or its network
// namespace is already dying, the kernel deletes the pair itself once the
// namespace's last reference goes (the container's sysfs mount holds one
// for a few milliseconds after its last process), and a delete of our own
// would wait for RCU grace periods of its own (about 20 ms). So then
// deleteVeth waits for the kernel's RTM_DELLINK instead, and deletes the
// pair itself only if that does not come within vethGoneTimeout (something
// else holds the namespace). Either way the pair is gone when it returns.
func deleteVeth(nl *netlink.Handle, name string, exited bool) error {
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
	if exited || peerNamespaceDying(l) {
		gone, err := waitLinkGone(nl, l.Attrs().Index, vethGoneTimeout)
		if err != nil {
			return fmt.Errorf("wait for %s to go: %w", name, err)
		}
		if gone {
			return nil
		}
	}
	if err := nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// vethGoneTimeout bounds the wait for the kernel to delete a veth pair
// whose container exited. It is not a timing assumption: past it, the pair
// is deleted explicitly.
const vethGoneTimeout = time.Second

// peerNamespaceDying reports whether the namespace holding the peer of veth
// l is being dismantled: its reference count reached zero. The link's
// IFLA_LINK_NETNSID is then either unassigned or an ID that no longer
// resolves to a live namespace (RTM_GETNSID answers ENOENT). Any doubt
// counts as alive.
func peerNamespaceDying(l netlink.Link) bool {
	nsid := int64(l.Attrs().NetNsID)
	switch {
	case nsid == -1:
		// No IFLA_LINK_NETNSID (the library's default): the peer is in this
		// namespace.
		return false
	case nsid == math.MaxUint32:
		// NETNSA_NSID_NOT_ASSIGNED (-1 as s32): no live namespace to name.
		return true
	case nsid < 0 || nsid > math.MaxInt32:
		return false
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNSID, unix.NLM_F_REQUEST)
	req.AddData(nl.NewRtGenMsg())
	req.AddData(nl.NewRtAttr(unix.NETNSA_NSID, nl.Uint32Attr(uint32(nsid))))
	_, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNSID)
	return errors.Is(err, unix.ENOENT)
}

// waitLinkGone waits until the interface with index index is deleted, for
// at most timeout, and reports whether it was. It listens to link events
// before it looks, so a deletion cannot slip between the two.
func waitLinkGone(h *netlink.Handle, index int, timeout time.Duration) (bool, error) {
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		return false, fmt.Errorf("subscribe to link events: %w", err)
	}
	defer sock.Close()
	if _, err := h.LinkByIndex(index); isNotFound(err) {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("look up interface %d: %w", index, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := sock.SetReceiveTimeout(&tv); err != nil {
			return false, err
		}
		msgs, _, err := sock.Receive()
		if errors.Is(err, unix.EAGAIN) {
			return false, nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Events were lost: look instead.
			if _, err := h.LinkByIndex(index); isNotFound(err) {
				return true, nil
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("receive link events: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_DELLINK || len(m.Data) < unix.SizeofIfInfomsg {
				continue
			}
			if int(nl.DeserializeIfInfomsg(m.Data).Index) == index {
				return true, nil
			}
		}
	}
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
