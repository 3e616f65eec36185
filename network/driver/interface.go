package driver

import (
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds retries of netlink dumps interrupted by concurrent
// changes (NLM_F_DUMP_INTR).
const dumpRetries = 5

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
func LinkExists(nl *Netlink, name string) (bool, error) {
	_, err := nl.linkByName(name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, errLinkNotFound) {
		return false, nil
	}
	return false, err
}

// Occupied is an IPv4 prefix in use on the host, and what uses it.
type Occupied struct {
	Prefix netip.Prefix
	What   string // e.g. "address 10.0.0.1/24 on eth0"
}

// HostPrefixes lists the prefixes of every IPv4 address and main-table
// route (the default route aside) where nl works, leaving out those of the
// interface called skip.
func HostPrefixes(n *Netlink, skip string) ([]Occupied, error) {
	nl, err := n.Handle()
	if err != nil {
		return nil, err
	}
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
func HostConflict(nl *Netlink, p netip.Prefix, skip string) (string, error) {
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

// setupVeth creates the veth pair of ep with one request, the host end on
// br and up, the container end inside containerNS; sets hairpin mode on the
// host end, then gives the container end its address and brings up it and
// lo, with a default route via the gateway. On failure the pair is removed
// (deleting one end deletes both).
//
// The container's side is set up with ioctls on an AF_INET socket made in
// containerNS, not through netlink: a netlink socket is freed an RCU grace
// period after it is closed (10 to 20 ms here) and holds its namespace
// until then, so a container that exits at once would keep its namespace,
// and with it the veth pair that Disconnect waits for, that much longer.
func setupVeth(host Host, br BridgeLink, n NetworkConfig, ep EndpointConfig, containerNS netns.NsHandle) (retErr error) {
	if containerNS.Equal(host.NS) {
		return ErrSameNamespace
	}
	fd, err := inetSocketAt(containerNS)
	if err != nil {
		return fmt.Errorf("socket in container namespace: %w", err)
	}
	defer unix.Close(fd)

	if err := addVethPair(host.Link, br, ep, containerNS); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create veth pair %s/%s: %w: %s in the container or %s on the host",
				ep.IfName, ep.HostVeth, ErrLinkExists, ep.IfName, ep.HostVeth)
		}
		return fmt.Errorf("create veth pair %s/%s: %w", ep.IfName, ep.HostVeth, err)
	}
	defer func() {
		if retErr != nil {
			if l, err := host.Link.linkByName(ep.HostVeth); err == nil {
				retErr = errors.Join(retErr, host.Link.deleteLink(l.Index))
			}
		}
	}()
	// A container reaching its own published port through a host address
	// gets its packets back through its own port when bridged traffic
	// passes iptables (br_netfilter); the bridge only allows that in
	// hairpin mode.
	if err := setHairpin(host.Link, ep.HostVeth); err != nil {
		return fmt.Errorf("set hairpin mode on %s: %w", ep.HostVeth, err)
	}

	addr := netip.PrefixFrom(ep.IP, n.Subnet.Bits())
	if err := setInet4Addr(fd, ep.IfName, addr); err != nil {
		return fmt.Errorf("add address %s to container %s: %w", addr, ep.IfName, err)
	}
	if err := setUp(fd, ep.IfName); err != nil {
		return fmt.Errorf("bring up container %s: %w", ep.IfName, err)
	}
	if err := setUp(fd, "lo"); err != nil {
		return fmt.Errorf("bring up container lo: %w", err)
	}
	if err := addDefaultRoute(fd, ep.IfName, n.Gateway); err != nil {
		return fmt.Errorf("add default route via %s in container: %w", n.Gateway, err)
	}
	return nil
}

// inetSocketAt returns an AF_INET datagram socket of network namespace ns,
// made by a thread of its own that enters ns and then returns to where it
// was. Interface and route ioctls on the socket act in ns, from any thread.
// Should the return fail, the thread is left locked, and so ends with its
// goroutine.
func inetSocketAt(ns netns.NsHandle) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if rerr := netns.Set(orig); rerr != nil {
			if err == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("return from network namespace: %w", rerr)}
			return // the thread stays locked: it ends with this goroutine
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- result{-1, os.NewSyscallError("socket", err)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

// setInet4Addr gives interface name the IPv4 address and prefix length of
// addr, and the broadcast address that goes with them, as "ip addr add
// ADDR/LEN brd +" would. The interface must be down: the classful mask
// SIOCSIFADDR sets first then never reaches a route.
func setInet4Addr(fd int, name string, addr netip.Prefix) error {
	mask := net.CIDRMask(addr.Bits(), 32)
	a := addr.Addr().As4()
	brd := a
	for i := range brd {
		brd[i] |= ^mask[i]
	}
	for _, step := range []struct {
		req  uint
		name string
		v    []byte
	}{
		{unix.SIOCSIFADDR, "SIOCSIFADDR", a[:]},
		{unix.SIOCSIFNETMASK, "SIOCSIFNETMASK", mask},
		{unix.SIOCSIFBRDADDR, "SIOCSIFBRDADDR", brd[:]},
	} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(step.v); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, step.req, ifr); err != nil {
			return os.NewSyscallError("ioctl "+step.name, err)
		}
	}
	return nil
}

// setUp brings up interface name.
func setUp(fd int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS", err)
	}
	return nil
}

// rtentry is struct rtentry of <linux/route.h>, for SIOCADDRT: unsigned
// long and pointers are uintptr-sized, and Go lays the fields out as C does.
type rtentry struct {
	pad1    uintptr
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uintptr
	pad4    uintptr
	metric  int16
	dev     *byte
	mtu     uintptr
	window  uintptr
	irtt    uint16
}

// addDefaultRoute adds "default via gw dev name".
func addDefaultRoute(fd int, name string, gw netip.Addr) error {
	dev, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	rt := &rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY, dev: dev}
	rt.dst.Family, rt.genmask.Family, rt.gateway.Family = unix.AF_INET, unix.AF_INET, unix.AF_INET
	rt.gateway.Addr = gw.As4()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(rt))); errno != 0 {
		return os.NewSyscallError("ioctl SIOCADDRT", errno)
	}
	return nil
}

// addVethPair sends the RTM_NEWLINK request of "ip link add ep.HostVeth mtu
// M txqueuelen 0 master br up type veth peer name ep.IfName mtu M netns
// containerNS": the pair is made, its host end attached and up in one go,
// where the library would take four requests.
func addVethPair(n *Netlink, br BridgeLink, ep EndpointConfig, containerNS netns.NsHandle) error {
	mtu := u32(uint32(br.MTU))
	// The container end: up only once paired (ENOTCONN before).
	peer := ifinfomsg(0, 0, 0)
	peer = attr(peer, unix.IFLA_IFNAME, cstr(ep.IfName))
	peer = attr(peer, unix.IFLA_MTU, mtu)
	peer = attr(peer, unix.IFLA_NET_NS_FD, u32(uint32(containerNS)))
	info := attr(nil, unix.IFLA_INFO_KIND, []byte("veth"))
	info = attr(info, unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, attr(nil, vethInfoPeer|unix.NLA_F_NESTED, peer))

	req := ifinfomsg(0, unix.IFF_UP, unix.IFF_UP)
	req = attr(req, unix.IFLA_IFNAME, cstr(ep.HostVeth))
	req = attr(req, unix.IFLA_MTU, mtu)
	// No transmit queue on the host end, as Docker does (veth is noqueue).
	req = attr(req, unix.IFLA_TXQLEN, u32(0))
	req = attr(req, unix.IFLA_MASTER, u32(uint32(br.Index)))
	req = attr(req, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	_, err := n.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, req, 0)
	return err
}

// setHairpin turns on hairpin mode of the bridge port called name, as "ip
// link set name type bridge_slave hairpin on" does: by name, so no look-up
// is needed.
func setHairpin(n *Netlink, name string) error {
	info := attr(nil, unix.IFLA_INFO_SLAVE_KIND, []byte("bridge"))
	info = attr(info, unix.IFLA_INFO_SLAVE_DATA|unix.NLA_F_NESTED, attr(nil, unix.IFLA_BRPORT_MODE, []byte{1}))
	req := ifinfomsg(0, 0, 0)
	req = attr(req, unix.IFLA_IFNAME, cstr(name))
	req = attr(req, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	_, err := n.request(unix.RTM_NEWLINK, unix.NLM_F_ACK, req, 0)
	return err
}

// deleteVeth removes the host end called name, and with it the container
// end. A missing interface is success; an interface of that name that is
// not a veth is left alone and reported.
//
// When the container's network namespace is dying (its last reference is
// gone: its processes exited and its sysfs mount went), the kernel deletes
// the pair itself as it dismantles the namespace, which it cannot stop doing;
// deleteVeth leaves it to the kernel and returns at once, instead of waiting
// for that teardown (RCU grace periods, 5-20 ms here) on the path of `rm`. A
// container whose processes exited holds the namespace a little longer (the
// mount holding it goes with its mount namespace): deleteVeth waits until the
// namespace is dying, or the pair gone. Only if neither happens within
// vethGoneTimeout (something else holds the namespace), or the container
// still runs, does it delete the pair itself. Either way the pair is gone,
// or certain to go, when it returns.
func deleteVeth(nl *Netlink, name string, exited bool) error {
	l, err := nl.linkByName(name)
	if errors.Is(err, errLinkNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Kind != "veth" {
		return fmt.Errorf("%w: %s is a %s, not a veth: not removing it", ErrLinkExists, name, l.kind())
	}
	if peerNamespaceDying(nl, l) {
		return nil
	}
	if exited {
		gone, err := waitNamespaceDying(nl, l, vethGoneTimeout)
		if err != nil {
			return fmt.Errorf("wait for %s to go: %w", name, err)
		}
		if gone {
			return nil
		}
	}
	if err := nl.deleteLink(l.Index); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// waitNamespaceDying polls, with a growing pause (0.1 to 5 ms), until the
// namespace of veth l's peer is dying or l is gone, for at most timeout, and
// reports whether either happened. The kernel sends no event for a namespace
// starting to die, hence the polling.
func waitNamespaceDying(nl *Netlink, l link, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for pause := 100 * time.Microsecond; time.Now().Before(deadline); pause = min(2*pause, 5*time.Millisecond) {
		time.Sleep(pause)
		if _, err := nl.linkByIndex(l.Index); errors.Is(err, errLinkNotFound) {
			return true, nil
		} else if err != nil {
			return false, err
		}
		if peerNamespaceDying(nl, l) {
			return true, nil
		}
	}
	return false, nil
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
func peerNamespaceDying(nl *Netlink, l link) bool {
	nsid := l.NetNsID
	switch {
	case nsid == -1:
		// No IFLA_LINK_NETNSID: the peer is in this namespace.
		return false
	case nsid == math.MaxUint32:
		// NETNSA_NSID_NOT_ASSIGNED (-1 as s32): no live namespace to name.
		return true
	case nsid < 0 || nsid > math.MaxInt32:
		return false
	}
	return nl.nsidGone(uint32(nsid))
}

// writeSysctl sets a sysctl of the calling thread's network namespace,
// e.g. "net/ipv4/ip_forward", if it is not already set to value.
func writeSysctl(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	cur, err := smallfile.Read(path)
	if err == nil && string(cur) == value+"\n" {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
