package driver

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/FishingRodd/fockker/network/iptables"
)

// bridgeDriver connects containers to a Linux bridge that holds the
// gateway address and routes, with NAT, to the rest of the world.
type bridgeDriver struct {
	host Host
}

func (d *bridgeDriver) Name() string { return Bridge }

// EnsureNetwork creates the bridge if it is missing (refusing if its subnet
// now overlaps an address or route of the host), gives it the gateway
// address, brings it up, enables IP forwarding and route_localnet on it,
// and installs the network's rules. What it created is removed again if a
// later step fails.
func (d *bridgeDriver) EnsureNetwork(n NetworkConfig) (_ BridgeLink, retErr error) {
	nl := d.host.Link
	br, err := nl.linkByName(n.Bridge)
	switch {
	case errors.Is(err, errLinkNotFound):
		conflict, err := HostConflict(nl, n.Subnet, "")
		if err != nil {
			return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		if conflict != "" {
			return BridgeLink{}, fmt.Errorf("network %s: cannot create bridge: subnet %s overlaps %s", n.Name, n.Subnet, conflict)
		}
		br, err = createBridge(nl, n.Bridge)
		if err != nil {
			return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		defer func() {
			if retErr != nil {
				retErr = errors.Join(retErr, deleteBridge(nl, n.Bridge))
			}
		}()
	case err != nil:
		return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
	case br.Kind != "bridge":
		return BridgeLink{}, fmt.Errorf("network %s: %w: %s is a %s, not a bridge", n.Name, ErrLinkExists, n.Bridge, br.kind())
	}

	if err := ensureAddr(nl, br, n.GatewayPrefix()); err != nil {
		return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if br.Flags&unix.IFF_UP == 0 {
		if err := nl.setUp(br.Index); err != nil {
			return BridgeLink{}, fmt.Errorf("network %s: bring up bridge %s: %w", n.Name, n.Bridge, err)
		}
	}
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	// Lets the host reach published ports through 127.0.0.1: the DNATed
	// packet keeps its loopback source until masqueraded on the way out.
	if err := writeSysctl("net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	// One read of the tables; nothing is written when all is in place.
	if err := d.host.Tables.Ensure(iptables.NetworkRules(n.Name, n.Bridge, n.Subnet)); err != nil {
		return BridgeLink{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	return BridgeLink{Index: br.Index, MTU: br.MTU}, nil
}

// bridge looks up the network's bridge.
func (d *bridgeDriver) bridge(n NetworkConfig) (BridgeLink, error) {
	br, err := d.host.Link.linkByName(n.Bridge)
	if errors.Is(err, errLinkNotFound) {
		return BridgeLink{}, fmt.Errorf("network %s: %w: %s", n.Name, ErrNoBridge, n.Bridge)
	}
	if err != nil {
		return BridgeLink{}, fmt.Errorf("network %s: find bridge: %w", n.Name, err)
	}
	if br.Kind != "bridge" {
		return BridgeLink{}, fmt.Errorf("network %s: %w: %s is a %s, not a bridge", n.Name, ErrLinkExists, n.Bridge, br.kind())
	}
	return BridgeLink{Index: br.Index, MTU: br.MTU}, nil
}

// isBridge reports whether br is still the bridge of network n.
func (d *bridgeDriver) isBridge(n NetworkConfig, br BridgeLink) bool {
	l, err := d.host.Link.linkByIndex(br.Index)
	return err == nil && l.Name == n.Bridge && l.Kind == "bridge"
}

// createBridge adds a bridge called name with a fixed random MAC address,
// so the bridge's address does not change as ports come and go.
func createBridge(nl *Netlink, name string) (link, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return link{}, fmt.Errorf("bridge MAC address: %w", err)
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.HardwareAddr = mac
	h, err := nl.Handle()
	if err != nil {
		return link{}, err
	}
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return link{}, fmt.Errorf("create bridge: %w: %s", ErrLinkExists, name)
		}
		return link{}, fmt.Errorf("create bridge %s: %w", name, err)
	}
	br, err := nl.linkByName(name)
	if err != nil {
		return link{}, errors.Join(fmt.Errorf("find new bridge %s: %w", name, err), deleteBridge(nl, name))
	}
	return br, nil
}

// deleteBridge removes the bridge called name; a missing one is success,
// and an interface of that name that is not a bridge is left alone.
func deleteBridge(nl *Netlink, name string) error {
	l, err := nl.linkByName(name)
	if errors.Is(err, errLinkNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if l.Kind != "bridge" {
		return fmt.Errorf("%w: %s is a %s, not a bridge: not removing it", ErrLinkExists, name, l.kind())
	}
	if err := nl.deleteLink(l.Index); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// ensureAddr adds addr to interface br unless it is there already. The
// interface's primary address, read with two ioctls, usually tells;
// otherwise every address of the interface is looked at.
func ensureAddr(nl *Netlink, br link, addr netip.Prefix) error {
	if isPrimaryAddr(br.Name, addr) {
		return nil
	}
	h, err := nl.Handle()
	if err != nil {
		return err
	}
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: br.Index, Name: br.Name}}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(dev, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", br.Name, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p == addr {
			return nil
		}
	}
	if err := h.AddrAdd(dev, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("add address %s to %s: %w", addr, br.Name, err)
	}
	return nil
}

// isPrimaryAddr reports whether addr is the primary IPv4 address, with its
// prefix length, of the interface called name in the calling thread's
// network namespace. Any failure counts as no.
func isPrimaryAddr(name string, addr netip.Prefix) bool {
	if !addr.Addr().Is4() {
		return false
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	get := func(req uint) (netip.Addr, bool) {
		ifr, err := unix.NewIfreq(name)
		if err != nil || unix.IoctlIfreq(fd, req, ifr) != nil {
			return netip.Addr{}, false
		}
		b, err := ifr.Inet4Addr()
		if err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFromSlice(b)
	}
	a, ok := get(unix.SIOCGIFADDR)
	if !ok || a != addr.Addr() {
		return false
	}
	mask, ok := get(unix.SIOCGIFNETMASK)
	if !ok {
		return false
	}
	ones, bits := net.IPMask(mask.AsSlice()).Size()
	return bits == 32 && ones == addr.Bits()
}

// DeleteNetwork removes the network's rules (every rule carrying its
// comment), then its bridge.
func (d *bridgeDriver) DeleteNetwork(n NetworkConfig) error {
	if err := d.host.Tables.DeleteOwners(iptables.NetworkComment(n.Name)); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := deleteBridge(d.host.Link, n.Bridge); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// Connect plugs containerNS into the bridge through a veth pair. A bridge
// given by EnsureNetwork that is no longer there (a veth cannot join it) is
// looked up again by name.
func (d *bridgeDriver) Connect(n NetworkConfig, ep EndpointConfig, containerNS netns.NsHandle, br BridgeLink) error {
	given := br.Index != 0
	if !given {
		var err error
		if br, err = d.bridge(n); err != nil {
			return err
		}
	}
	err := setupVeth(d.host, br, n, ep, containerNS)
	if err != nil && given && !d.isBridge(n, br) {
		// Gone or replaced since: setupVeth removed what it made.
		if br, err = d.bridge(n); err != nil {
			return err
		}
		err = setupVeth(d.host, br, n, ep, containerNS)
	}
	if err != nil {
		return fmt.Errorf("network %s: connect %s: %w", n.Name, ep.ID, err)
	}
	return nil
}

// Disconnect removes ep's port rules, if it has ports, and its veth pair.
func (d *bridgeDriver) Disconnect(n NetworkConfig, ep EndpointConfig) error {
	return errors.Join(d.RemovePorts(n, ep), d.RemoveInterface(n, ep))
}

// RemoveInterface removes ep's veth pair (see deleteVeth).
func (d *bridgeDriver) RemoveInterface(n NetworkConfig, ep EndpointConfig) error {
	return deleteVeth(d.host.Link, ep.HostVeth, ep.Exited)
}

func portRules(ep EndpointConfig) []iptables.Rule {
	rules := make([]iptables.Rule, 0, len(ep.Ports))
	for _, p := range ep.Ports {
		rules = append(rules, iptables.PortRule(ep.ID, p.Proto, p.HostPort, netip.AddrPortFrom(ep.IP, p.ContainerPort)))
	}
	return rules
}

// AddPorts installs one DNAT rule per port mapping (and our chains, if
// they went missing).
func (d *bridgeDriver) AddPorts(n NetworkConfig, ep EndpointConfig) error {
	if len(ep.Ports) == 0 {
		return nil
	}
	if err := d.host.Tables.Ensure(portRules(ep)); err != nil {
		return fmt.Errorf("publish ports of %s: %w", ep.ID, err)
	}
	return nil
}

// RemovePorts removes ep's DNAT rules: every rule carrying its comment. An
// endpoint without ports has none, and iptables is not even read.
func (d *bridgeDriver) RemovePorts(n NetworkConfig, ep EndpointConfig) error {
	if len(ep.Ports) == 0 {
		return nil
	}
	if err := d.host.Tables.DeleteOwners(iptables.ContainerComment(ep.ID)); err != nil {
		return fmt.Errorf("unpublish ports of %s: %w", ep.ID, err)
	}
	return nil
}
