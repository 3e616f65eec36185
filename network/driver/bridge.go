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
func (d *bridgeDriver) EnsureNetwork(n NetworkConfig) (retErr error) {
	nl := d.host.Link
	br, err := nl.LinkByName(n.Bridge)
	switch {
	case isNotFound(err):
		conflict, err := HostConflict(nl, n.Subnet, "")
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if conflict != "" {
			return fmt.Errorf("network %s: cannot create bridge: subnet %s overlaps %s", n.Name, n.Subnet, conflict)
		}
		br, err = createBridge(nl, n.Bridge)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		defer func() {
			if retErr != nil {
				retErr = errors.Join(retErr, deleteBridge(nl, n.Bridge))
			}
		}()
	case err != nil:
		return fmt.Errorf("network %s: look up bridge %s: %w", n.Name, n.Bridge, err)
	case br.Type() != "bridge":
		return fmt.Errorf("network %s: %w: %s is a %s, not a bridge", n.Name, ErrLinkExists, n.Bridge, br.Type())
	}

	if err := ensureAddr(nl, br, n.GatewayPrefix()); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := nl.LinkSetUp(br); err != nil {
			return fmt.Errorf("network %s: bring up bridge %s: %w", n.Name, n.Bridge, err)
		}
	}
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	// Lets the host reach published ports through 127.0.0.1: the DNATed
	// packet keeps its loopback source until masqueraded on the way out.
	if err := writeSysctl("net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	// One read of the tables; nothing is written when all is in place.
	if err := d.host.Tables.Ensure(iptables.NetworkRules(n.Name, n.Bridge, n.Subnet)); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// createBridge adds a bridge called name with a fixed random MAC address,
// so the bridge's address does not change as ports come and go.
func createBridge(nl *netlink.Handle, name string) (netlink.Link, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("bridge MAC address: %w", err)
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.HardwareAddr = mac
	if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge: %w: %s", ErrLinkExists, name)
		}
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	br, err := nl.LinkByName(name)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("find new bridge %s: %w", name, err), deleteBridge(nl, name))
	}
	return br, nil
}

// deleteBridge removes the bridge called name; a missing one is success,
// and an interface of that name that is not a bridge is left alone.
func deleteBridge(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("%w: %s is a %s, not a bridge: not removing it", ErrLinkExists, name, l.Type())
	}
	if err := nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// ensureAddr adds addr to link unless it is there already.
func ensureAddr(nl *netlink.Handle, link netlink.Link, addr netip.Prefix) error {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return nl.AddrList(link, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p == addr {
			return nil
		}
	}
	if err := nl.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("add address %s to %s: %w", addr, link.Attrs().Name, err)
	}
	return nil
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

// Connect plugs containerNS into the bridge through a veth pair.
func (d *bridgeDriver) Connect(n NetworkConfig, ep EndpointConfig, containerNS netns.NsHandle) error {
	br, err := d.host.Link.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("network %s: find bridge %s: %w", n.Name, n.Bridge, err)
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("network %s: %w: %s is a %s, not a bridge", n.Name, ErrLinkExists, n.Bridge, br.Type())
	}
	if err := setupVeth(d.host, br, n, ep, containerNS); err != nil {
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
