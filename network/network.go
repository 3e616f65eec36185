package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/atomicfile"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/FishingRodd/fockker/network/driver"
	"github.com/FishingRodd/fockker/network/ipam"
)

// Network is a stored network.
type Network struct {
	Name    string       `json:"name"`
	Driver  string       `json:"driver"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	Bridge  string       `json:"bridge"`
}

// IPRange returns the gateway with the prefix length, 192.168.0.1/24, as
// "network ls" shows it.
func (n *Network) IPRange() string {
	return netip.PrefixFrom(n.Gateway, n.Subnet.Bits()).String()
}

func (n *Network) driverConfig() driver.NetworkConfig {
	return driver.NetworkConfig{Name: n.Name, Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway}
}

func (n *Network) ipamRange() ipam.Range {
	return ipam.Range{Subnet: n.Subnet, Gateway: n.Gateway}
}

// validName reports whether s is a letter or digit followed by letters,
// digits, '_', '.' and '-': what a network name, which is also its bridge's
// name, and a container ID may look like.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')) {
			return false
		}
	}
	return s != ""
}

// ValidateName checks that name can name a network and its bridge: at most
// 15 bytes of [a-zA-Z0-9_.-], starting with a letter or digit, and neither
// "none" nor "host".
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > driver.MaxIfNameLen:
		return fmt.Errorf("%w %q: longer than %d bytes (it names the bridge interface)", ErrInvalidName, name, driver.MaxIfNameLen)
	case !validName(name):
		return fmt.Errorf("%w %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalidName, name)
	case name == NoneName || name == HostName:
		return fmt.Errorf("%w %q: reserved for run --net", ErrInvalidName, name)
	}
	return nil
}

// ParseSubnet parses an IPv4 CIDR such as 10.10.0.0/16 and checks that it
// can hold a network: canonical (no host bits), /30 or wider, and clear of
// the multicast range.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w %q: not a CIDR like 10.10.0.0/24", ErrInvalidSubnet, s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%w %q: only IPv4 is supported", ErrInvalidSubnet, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%w %q: host bits set, did you mean %s?", ErrInvalidSubnet, s, p.Masked())
	}
	if multicast := netip.MustParsePrefix("224.0.0.0/4"); p.Overlaps(multicast) {
		// No interface takes such an address (SIOCSIFADDR refuses it).
		return netip.Prefix{}, fmt.Errorf("%w %q: overlaps the multicast range %s", ErrInvalidSubnet, s, multicast)
	}
	r := ipam.Range{Subnet: p, Gateway: p.Addr().Next()}
	if err := r.Validate(); err != nil {
		return netip.Prefix{}, fmt.Errorf("%w %q: %w", ErrInvalidSubnet, s, err)
	}
	return p, nil
}

func (m *Manager) netDir(name string) string { return filepath.Join(m.root, name) }
func (m *Manager) configPath(name string) string {
	return filepath.Join(m.netDir(name), configFileName)
}
func (m *Manager) ipamDir(name string) string     { return filepath.Join(m.netDir(name), ipamDirName) }
func (m *Manager) endpointDir(name string) string { return filepath.Join(m.netDir(name), endpointsDir) }

// load reads the stored config of a network whose name is valid.
func (m *Manager) load(name string) (*Network, error) {
	b, err := smallfile.Read(m.configPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: read config: %w", name, err)
	}
	n, ok := decodeNetwork(b)
	if !ok {
		n = &Network{}
		if err := json.Unmarshal(b, n); err != nil {
			return nil, fmt.Errorf("network %s: parse %s: %w", name, m.configPath(name), err)
		}
	}
	if n.Name != name {
		return nil, fmt.Errorf("network %s: config names %q", name, n.Name)
	}
	if err := n.ipamRange().Validate(); err != nil {
		return nil, fmt.Errorf("network %s: stored config: %w", name, err)
	}
	return n, nil
}

// list reads every stored network, sorted by name.
func (m *Manager) list() ([]*Network, error) {
	entries, err := os.ReadDir(m.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var out []*Network
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		n, err := m.load(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // a directory left without config by a crash
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil // os.ReadDir sorts by name
}

func (m *Manager) save(n *Network) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	for _, dir := range []string{m.ipamDir(n.Name), m.endpointDir(n.Name)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := atomicfile.Write(m.configPath(n.Name), b, 0o644, atomicfile.Durable); err != nil {
		return fmt.Errorf("network %s: write config: %w", n.Name, err)
	}
	return nil
}

func (m *Manager) allocator(n *Network) (*ipam.Allocator, error) {
	store, err := ipam.NewDiskStore(m.ipamDir(n.Name), m.spare("address"))
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	return ipam.NewAllocator(n.ipamRange(), store)
}

// checkSubnet refuses p if it overlaps a stored network or something on
// the host.
func checkSubnet(p netip.Prefix, others []*Network, host []driver.Occupied) error {
	for _, o := range others {
		if o.Subnet.Overlaps(p) {
			return fmt.Errorf("%w: %s overlaps network %s (%s)", ErrOverlap, p, o.Name, o.Subnet)
		}
	}
	for _, o := range host {
		if o.Prefix.Overlaps(p) {
			return fmt.Errorf("%w: %s overlaps the host's %s", ErrOverlap, p, o.What)
		}
	}
	return nil
}

// pickSubnet returns the first /24 of the pool that checkSubnet accepts.
func pickSubnet(others []*Network, host []driver.Occupied) (netip.Prefix, error) {
	var found netip.Prefix
	poolCandidates(func(c netip.Prefix) bool {
		if checkSubnet(c, others, host) == nil {
			found = c
			return false
		}
		return true
	})
	if !found.IsValid() {
		return netip.Prefix{}, ErrPoolExhausted
	}
	return found, nil
}
