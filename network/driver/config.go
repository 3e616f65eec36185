// Package driver builds fockker networks on the host: the bridge, the veth
// pair of each container and their packet-filter rules.
package driver

import (
	"errors"
	"fmt"
	"net/netip"
)

// Bridge is the name of the bridge driver, the only one there is.
const Bridge = "bridge"

// ContainerIfName is the name of a container's interface.
const ContainerIfName = "eth0"

// MaxIfNameLen is the longest interface name Linux accepts (IFNAMSIZ-1).
const MaxIfNameLen = 15

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnsupported means a driver name other than "bridge".
	ErrUnsupported = errors.New("unsupported network driver")
	// ErrSameNamespace means the container shares the host's network namespace.
	ErrSameNamespace = errors.New("process shares the host network namespace")
	// ErrLinkExists means an interface with the wanted name is already there
	// and is not the kind we would have made.
	ErrLinkExists = errors.New("interface already exists")
	// ErrNoBridge means the network's bridge is not there (any more).
	ErrNoBridge = errors.New("bridge not found")
)

// BridgeLink is a network's bridge as EnsureNetwork left it: what a veth
// pair needs to join it.
type BridgeLink struct {
	Index int // interface index
	MTU   int
}

// NetworkConfig describes a network to a driver.
type NetworkConfig struct {
	Name    string
	Bridge  string
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// GatewayPrefix returns the bridge address: the gateway with the subnet's
// prefix length, as in 192.168.0.1/24.
func (n NetworkConfig) GatewayPrefix() netip.Prefix {
	return netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
}

// EndpointConfig describes a container's attachment to a network.
type EndpointConfig struct {
	ID       string // container ID, owner of the endpoint's rules
	HostVeth string // host end of the veth pair
	IfName   string // container end of the veth pair
	IP       netip.Addr
	Ports    []PortMapping
	// Exited tells Disconnect that the container's processes are gone, so
	// its network namespace, and the veth pair with it, is going away.
	Exited bool
}

// PortMapping publishes a container port on every address of the host.
type PortMapping struct {
	HostPort      uint16 `json:"host_port"`
	ContainerPort uint16 `json:"container_port"`
	Proto         string `json:"proto"` // "tcp" or "udp"
}

// String formats p the way it is written on the command line, 8080:80/tcp.
func (p PortMapping) String() string {
	return fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.Proto)
}

// Validate checks ports and protocol.
func (p PortMapping) Validate() error {
	if p.HostPort == 0 || p.ContainerPort == 0 {
		return fmt.Errorf("port mapping %s: port 0 is not allowed", p)
	}
	if p.Proto != "tcp" && p.Proto != "udp" {
		return fmt.Errorf("port mapping %s: protocol must be tcp or udp", p)
	}
	return nil
}
