package driver

import (
	"fmt"

	"github.com/vishvananda/netns"

	"github.com/FishingRodd/fockker/network/iptables"
)

// Driver builds networks of one kind. Every method is idempotent: building
// what exists, or tearing down what is gone, succeeds.
type Driver interface {
	// Name returns the driver's name, as stored in network configs.
	Name() string
	// EnsureNetwork creates whatever of the network is missing on the host
	// (bridge, address, forwarding, rules), adopting what is there, and
	// returns the bridge.
	EnsureNetwork(n NetworkConfig) (BridgeLink, error)
	// DeleteNetwork removes the network's rules and bridge.
	DeleteNetwork(n NetworkConfig) error
	// Connect plugs the network namespace containerNS into the network
	// with ep's interface names and address. br is the bridge as
	// EnsureNetwork returned it, or the zero BridgeLink to look it up; a
	// bridge that is gone gives an error wrapping ErrNoBridge. It removes
	// what it made if it fails.
	Connect(n NetworkConfig, ep EndpointConfig, containerNS netns.NsHandle, br BridgeLink) error
	// Disconnect removes ep's port rules and its host interface. Ports
	// not listed in ep are not looked for.
	Disconnect(n NetworkConfig, ep EndpointConfig) error
	// RemoveInterface removes ep's host interface, and the container's
	// with it: Disconnect without the port rules. It needs no lock, and
	// returns once the interface is gone.
	RemoveInterface(n NetworkConfig, ep EndpointConfig) error
	// AddPorts installs ep's port mappings; on failure none is left.
	AddPorts(n NetworkConfig, ep EndpointConfig) error
	// RemovePorts removes ep's port mappings; for an endpoint without
	// ports it does nothing.
	RemovePorts(n NetworkConfig, ep EndpointConfig) error
}

// Host is what a driver works on: the host's network namespace, netlink
// in it, and iptables. The calling thread must be in that namespace, since
// iptables runs there.
type Host struct {
	NS     netns.NsHandle
	Link   *Netlink
	Tables *iptables.Tables
}

// Supported returns ErrUnsupported unless name is a driver's name.
func Supported(name string) error {
	if name != Bridge {
		return fmt.Errorf("%w %q (only %q is available)", ErrUnsupported, name, Bridge)
	}
	return nil
}

// New returns the driver called name, working on host.
func New(name string, host Host) (Driver, error) {
	if err := Supported(name); err != nil {
		return nil, err
	}
	return &bridgeDriver{host: host}, nil
}
