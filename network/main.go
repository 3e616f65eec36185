package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/FishingRodd/fockker/network/driver"
	"github.com/FishingRodd/fockker/network/iptables"
)

// Manager creates, lists and removes networks and attaches containers to
// them. Its state is kept under <stateRoot>/network; every method holds a
// flock on it, exclusive for changes and shared for reads, so any number of
// fockker processes may use one state root.
type Manager struct {
	root string

	mu sync.Mutex
	// ensured is the network the last EnsureDefault made sure of, its
	// bridge, and when, for a Connect that follows at once (see
	// takeEnsured).
	ensured   *Network
	ensuredBr driver.BridgeLink
	ensuredAt time.Time
}

// ensuredFor bounds how long what EnsureDefault made sure of is trusted by
// a Connect that follows it without another call in between.
const ensuredFor = time.Second

// NewManager returns a manager keeping its state under
// <stateRoot>/network. Nothing is touched until a method is called.
func NewManager(stateRoot string) *Manager {
	return &Manager{root: filepath.Join(stateRoot, dirName)}
}

// Root returns the directory holding the manager's state.
func (m *Manager) Root() string { return m.root }

// lock takes a flock (unix.LOCK_EX or unix.LOCK_SH) on the state root on a
// fresh open file description, so goroutines of one process exclude each
// other too.
func (m *Manager) lock(how int) (unlock func() error, err error) {
	m.forgetEnsured()
	if err := os.MkdirAll(m.root, 0o755); err != nil {
		return nil, fmt.Errorf("network state: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(m.root, lockFileName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network state: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network state: %w", &os.PathError{Op: "flock", Path: f.Name(), Err: err})
	}
	return f.Close, nil
}

// withLock runs fn under the lock and returns fn's error joined with any
// error releasing the lock.
func (m *Manager) withLock(how int, fn func() error) error {
	unlock, err := m.lock(how)
	if err != nil {
		return err
	}
	err = fn()
	if uerr := unlock(); uerr != nil && err == nil {
		err = fmt.Errorf("network state: unlock: %w", uerr)
	}
	return err
}

// host is what the driver works on, opened in the calling thread's
// network namespace.
type host struct {
	driver.Host
}

// openHost opens the calling thread's network namespace. iptables is not
// run until a rule needs to be read or changed, and what it read is cached
// in the state root (see package iptables).
func (m *Manager) openHost() (*host, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open host network namespace: %w", err)
	}
	// The calling thread's namespace: no setns needed.
	nl, err := driver.OpenNetlink()
	if err != nil {
		ns.Close()
		return nil, err
	}
	ipt := iptables.New(m.iptablesCache())
	return &host{driver.Host{NS: ns, Link: nl, Tables: ipt}}, nil
}

func (m *Manager) iptablesCache() string { return filepath.Join(m.root, iptablesCacheName) }

func (h *host) close() {
	h.Link.Close()
	h.NS.Close()
}

func (h *host) driver(name string) (driver.Driver, error) {
	return driver.New(name, h.Host)
}

// removeChainsIfUnused removes fockker's iptables chains once no rule is
// left in them, and with them the cache of the rules and the spare files.
func (m *Manager) removeChainsIfUnused(h *host) error {
	removed, err := h.Tables.RemoveChains()
	if err != nil || !removed {
		return err
	}
	// With the cache under the name earlier versions gave it (JSON).
	for _, p := range []string{m.iptablesCache(), filepath.Join(m.root, legacyIptablesCacheName)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network state: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(m.root, spareDirName)); err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	return nil
}

// Create creates a network called name with driverName ("" means bridge)
// on subnet, a CIDR such as 10.10.0.0/24; an empty subnet picks a free /24
// of a private pool. The gateway is the subnet's first address, held by a
// bridge called name. It is refused, with nothing created, for an invalid
// name, driver or subnet, an existing network or host interface of that
// name, and a subnet overlapping another network or an address or route of
// the host.
func (m *Manager) Create(name, driverName, subnet string) (*Network, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if driverName == "" {
		driverName = driver.Bridge
	}
	if err := driver.Supported(driverName); err != nil {
		return nil, err
	}
	var prefix netip.Prefix
	if subnet != "" {
		p, err := ParseSubnet(subnet)
		if err != nil {
			return nil, err
		}
		prefix = p
	}
	var n *Network
	err := m.withLock(unix.LOCK_EX, func() error {
		h, err := m.openHost()
		if err != nil {
			return err
		}
		defer h.close()
		n, _, err = m.create(h, name, driverName, prefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// create does Create's work under the lock.
func (m *Manager) create(h *host, name, driverName string, prefix netip.Prefix) (_ *Network, _ driver.BridgeLink, retErr error) {
	var none driver.BridgeLink
	if _, err := os.Stat(m.configPath(name)); err == nil {
		return nil, none, fmt.Errorf("%w: %s", ErrExists, name)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, none, fmt.Errorf("network %s: %w", name, err)
	}
	taken, err := driver.LinkExists(h.Link, name)
	if err != nil {
		return nil, none, fmt.Errorf("network %s: %w", name, err)
	}
	if taken {
		return nil, none, fmt.Errorf("network %s: %w", name, ErrNameTaken)
	}
	others, err := m.list()
	if err != nil {
		return nil, none, err
	}
	occupied, err := driver.HostPrefixes(h.Link, "")
	if err != nil {
		return nil, none, fmt.Errorf("network %s: %w", name, err)
	}
	if prefix.IsValid() {
		if err := checkSubnet(prefix, others, occupied); err != nil {
			return nil, none, fmt.Errorf("network %s: %w", name, err)
		}
	} else {
		prefix, err = pickSubnet(others, occupied)
		if err != nil {
			return nil, none, fmt.Errorf("network %s: %w", name, err)
		}
	}
	drv, err := h.driver(driverName)
	if err != nil {
		return nil, none, err
	}
	n := &Network{Name: name, Driver: driverName, Subnet: prefix, Gateway: prefix.Addr().Next(), Bridge: name}

	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr,
				drv.DeleteNetwork(n.driverConfig()),
				os.RemoveAll(m.netDir(name)),
				m.removeChainsIfUnused(h))
		}
	}()
	if err := m.save(n); err != nil {
		return nil, none, err
	}
	br, err := drv.EnsureNetwork(n.driverConfig())
	if err != nil {
		return nil, none, err
	}
	return n, br, nil
}

// List returns every network, sorted by name.
func (m *Manager) List() ([]*Network, error) {
	var out []*Network
	err := m.withLock(unix.LOCK_SH, func() (err error) {
		out, err = m.list()
		return err
	})
	return out, err
}

// Get returns the network called name, or an error wrapping ErrNotFound.
func (m *Manager) Get(name string) (*Network, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var n *Network
	err := m.withLock(unix.LOCK_SH, func() (err error) {
		n, err = m.load(name)
		return err
	})
	return n, err
}

// Endpoints returns the containers attached to the network called name,
// sorted by container ID.
func (m *Manager) Endpoints(name string) ([]*Endpoint, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var eps []*Endpoint
	err := m.withLock(unix.LOCK_SH, func() error {
		if _, err := m.load(name); err != nil {
			return err
		}
		var err error
		eps, err = m.endpoints(name)
		return err
	})
	return eps, err
}

// Remove removes the network called name: its bridge, its iptables rules
// and its state, addresses included. While containers are attached it
// fails with an error wrapping ErrInUse, unless force is set, in which case
// each is disconnected first (port rules, host veth, address). fockker's
// iptables chains go with the last network.
func (m *Manager) Remove(name string, force bool) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return m.withLock(unix.LOCK_EX, func() error {
		n, err := m.load(name)
		if err != nil {
			return err
		}
		eps, err := m.endpoints(name)
		if err != nil {
			return err
		}
		if len(eps) > 0 && !force {
			ids := make([]string, len(eps))
			for i, ep := range eps {
				ids[i] = ep.ID
			}
			return fmt.Errorf("%w: %s is used by %s", ErrInUse, name, strings.Join(ids, ", "))
		}
		h, err := m.openHost()
		if err != nil {
			return err
		}
		defer h.close()
		drv, err := h.driver(n.Driver)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			if err := m.disconnect(h, drv, n, ep); err != nil {
				return err
			}
		}
		if err := drv.DeleteNetwork(n.driverConfig()); err != nil {
			return err
		}
		// The config goes last: until then a failed removal can be retried.
		if err := os.RemoveAll(m.netDir(name)); err != nil {
			return fmt.Errorf("network %s: remove state: %w", name, err)
		}
		return m.removeChainsIfUnused(h)
	})
}

// EnsureDefault returns the default network fockker0, 192.168.0.1/24,
// creating it if it was never created, and re-creating its bridge and
// rules from the stored config if they are gone (after a reboot, say).
func (m *Manager) EnsureDefault() (*Network, error) {
	var (
		n  *Network
		br driver.BridgeLink
	)
	err := m.withLock(unix.LOCK_EX, func() error {
		h, err := m.openHost()
		if err != nil {
			return err
		}
		defer h.close()
		n, err = m.load(DefaultName)
		if errors.Is(err, ErrNotFound) {
			n, br, err = m.create(h, DefaultName, driver.Bridge, netip.MustParsePrefix(DefaultSubnet))
			return err
		}
		if err != nil {
			return err
		}
		drv, err := h.driver(n.Driver)
		if err != nil {
			return err
		}
		br, err = drv.EnsureNetwork(n.driverConfig())
		return err
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.ensured, m.ensuredBr, m.ensuredAt = n, br, time.Now()
	m.mu.Unlock()
	return n, nil
}

// takeEnsured returns the network that the previous call of m, an
// EnsureDefault less than ensuredFor ago, made sure of (bridge, address,
// forwarding, rules), and its bridge, or nil. Connect takes it before it
// locks, and does not check that network again beyond its bridge being
// there (a veth can join it): run calls the two back to back. Any call that
// locks forgets it.
func (m *Manager) takeEnsured() (*Network, driver.BridgeLink) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.ensured
	m.ensured = nil
	if n == nil || time.Since(m.ensuredAt) > ensuredFor {
		return nil, driver.BridgeLink{}
	}
	return n, m.ensuredBr
}

// forgetEnsured clears what takeEnsured would find.
func (m *Manager) forgetEnsured() {
	m.mu.Lock()
	m.ensured = nil
	m.mu.Unlock()
}

// Connect attaches the network namespace of process pid to the network
// called netName as container containerID, publishing ports:
//
//   - the network's bridge and rules are re-created if missing;
//   - an address is allocated;
//   - a veth pair is made: HostVethName(containerID) on the bridge, and
//     eth0 in the container with the address, a default route via the
//     gateway, and lo up;
//   - a DNAT rule is added per port mapping.
//
// A port already published by another container (same protocol) or bound
// on the host is refused, with an error wrapping ErrPortInUse, before
// anything is made; any later failure undoes everything. The returned
// Endpoint is also stored under the network until Disconnect.
func (m *Manager) Connect(netName, containerID string, pid int, ports []PortMapping) (*Endpoint, error) {
	if err := ValidateName(netName); err != nil {
		return nil, err
	}
	if err := validateID(containerID); err != nil {
		return nil, err
	}
	if pid <= 0 {
		return nil, fmt.Errorf("connect %s: invalid pid %d", containerID, pid)
	}
	if err := checkPortList(ports); err != nil {
		return nil, err
	}
	ports = slices.Clone(ports)
	ensured, br := m.takeEnsured()
	var ep *Endpoint
	err := m.withLock(unix.LOCK_EX, func() (err error) {
		ep, err = m.connect(netName, containerID, pid, ports, ensured, br)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

// connect does Connect's work under the lock; ensured and its bridge br
// are what takeEnsured returned.
func (m *Manager) connect(netName, id string, pid int, ports []PortMapping, ensured *Network, br driver.BridgeLink) (_ *Endpoint, retErr error) {
	n, err := m.load(netName)
	if err != nil {
		return nil, err
	}
	if old, err := m.loadEndpoint(netName, id); err != nil {
		return nil, err
	} else if old != nil {
		return nil, fmt.Errorf("%w: %s to %s", ErrConnected, id, netName)
	}
	if err := m.checkPortsFree(ports); err != nil {
		return nil, err
	}
	proc, err := processOf(pid)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	cns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("connect %s: network namespace of pid %d: %w", id, pid, err)
	}
	defer cns.Close()
	h, err := m.openHost()
	if err != nil {
		return nil, err
	}
	defer h.close()
	if cns.Equal(h.NS) {
		return nil, fmt.Errorf("connect %s: pid %d: %w", id, pid, driver.ErrSameNamespace)
	}
	if taken, err := driver.LinkExists(h.Link, HostVethName(id)); err != nil {
		return nil, fmt.Errorf("connect %s: %w", id, err)
	} else if taken {
		return nil, fmt.Errorf("connect %s: host interface %s: %w", id, HostVethName(id), ErrNameTaken)
	}
	drv, err := h.driver(n.Driver)
	if err != nil {
		return nil, err
	}
	if ensured == nil || *ensured != *n {
		if br, err = drv.EnsureNetwork(n.driverConfig()); err != nil {
			return nil, err
		}
	}

	alloc, err := m.allocator(n)
	if err != nil {
		return nil, err
	}
	ip, err := alloc.Allocate(id)
	if err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", id, netName, err)
	}
	ep := &Endpoint{
		ID:       id,
		Network:  netName,
		HostVeth: HostVethName(id),
		IfName:   driver.ContainerIfName,
		IP:       ip,
		Subnet:   n.Subnet,
		Gateway:  n.Gateway,
		Ports:    ports,
	}
	connected := false
	defer func() {
		if retErr == nil {
			return
		}
		if connected {
			retErr = errors.Join(retErr, drv.Disconnect(n.driverConfig(), ep.driverConfig()))
		}
		retErr = errors.Join(retErr, alloc.Release(id), m.removeEndpoint(netName, id))
	}()
	// Recorded before anything is built, so that after a crash a forced
	// "network rm" still finds and removes it.
	if err := m.saveEndpoint(&endpointRecord{Endpoint: *ep, Process: proc}); err != nil {
		return nil, err
	}
	err = drv.Connect(n.driverConfig(), ep.driverConfig(), cns, br)
	if errors.Is(err, driver.ErrNoBridge) {
		// Gone since EnsureDefault made sure of it: rebuild it.
		if br, err = drv.EnsureNetwork(n.driverConfig()); err == nil {
			err = drv.Connect(n.driverConfig(), ep.driverConfig(), cns, br)
		}
	}
	if err != nil {
		return nil, err
	}
	connected = true
	if err := drv.AddPorts(n.driverConfig(), ep.driverConfig()); err != nil {
		return nil, err
	}
	return ep, nil
}

// Disconnect undoes Connect: port rules, the veth pair, the address and
// the stored endpoint. It is idempotent, and works after the network was
// removed (by a forced Remove) or the container's namespace is gone.
//
// The lock is not held while a veth pair still there goes, which for a
// container that exited means waiting for the kernel (see
// driver.RemoveInterface): port rules are removed first, and the address
// and the stored endpoint last, so that until the pair is gone its address
// is not handed out again and a Disconnect cut short is found and finished
// by the next.
func (m *Manager) Disconnect(ep *Endpoint) error {
	if ep == nil {
		return nil
	}
	if err := ep.validate(); err != nil {
		return err
	}
	h, err := m.openHost()
	if err != nil {
		return err
	}
	defer h.close()
	var (
		drv    driver.Driver
		netCfg driver.NetworkConfig
		cfg    driver.EndpointConfig
		done   bool
	)
	err = m.withLock(unix.LOCK_EX, func() error {
		n, err := m.load(ep.Network)
		if errors.Is(err, ErrNotFound) {
			// The network went with its state; remove what could remain.
			drv, err = h.driver(driver.Bridge)
			if err != nil {
				return err
			}
			netCfg, cfg = driver.NetworkConfig{Name: ep.Network}, ep.driverConfig()
			return drv.RemovePorts(netCfg, cfg)
		}
		if err != nil {
			return err
		}
		if drv, err = h.driver(n.Driver); err != nil {
			return err
		}
		ports, stored, err := m.published(ep)
		if err != nil {
			return err
		}
		netCfg, cfg = n.driverConfig(), ep.driverConfig()
		cfg.Ports = ports
		if err := drv.RemovePorts(netCfg, cfg); err != nil {
			return err
		}
		// Usually the pair went with the container's namespace already.
		if present, err := driver.LinkExists(h.Link, cfg.HostVeth); err != nil {
			return fmt.Errorf("disconnect %s: %w", ep.ID, err)
		} else if !present {
			done = true
			return m.release(n, ep.ID)
		}
		cfg.Exited = stored != nil && stored.Process.exited()
		return nil
	})
	if err != nil || done {
		return err
	}
	if err := drv.RemoveInterface(netCfg, cfg); err != nil {
		return err
	}
	return m.withLock(unix.LOCK_EX, func() error {
		n, err := m.load(ep.Network)
		if errors.Is(err, ErrNotFound) {
			return nil // its state, address and endpoint included, is gone
		}
		if err != nil {
			return err
		}
		return m.release(n, ep.ID)
	})
}

// published returns the port mappings whose rules ep's container may
// still have: those of its stored endpoint, which is written before any
// rule is added and cleared only after its rules are deleted; or, when
// nothing is stored (its network was removed), those ep lists. It also
// returns the stored endpoint, if any.
func (m *Manager) published(ep *Endpoint) ([]PortMapping, *endpointRecord, error) {
	stored, err := m.loadEndpointRecord(ep.Network, ep.ID)
	if err != nil {
		return nil, nil, err
	}
	if stored != nil {
		return stored.Ports, stored, nil
	}
	return ep.Ports, nil, nil
}

// disconnect removes ep under the lock. Port rules are looked for only if
// the container may still have some (see published); the veth pair is left
// to the kernel if the container's process has exited.
func (m *Manager) disconnect(h *host, drv driver.Driver, n *Network, ep *Endpoint) error {
	ports, stored, err := m.published(ep)
	if err != nil {
		return err
	}
	cfg := ep.driverConfig()
	cfg.Ports = ports
	cfg.Exited = stored != nil && stored.Process.exited()
	if err := drv.Disconnect(n.driverConfig(), cfg); err != nil {
		return err
	}
	return m.release(n, ep.ID)
}

// release frees the address of container id on n and removes its stored
// endpoint, under the lock.
func (m *Manager) release(n *Network, id string) error {
	alloc, err := m.allocator(n)
	if err != nil {
		return err
	}
	if err := alloc.Release(id); err != nil {
		return fmt.Errorf("network %s: release address of %s: %w", n.Name, id, err)
	}
	return m.removeEndpoint(n.Name, id)
}

// ReleasePorts removes ep's port mappings, for a container that stopped:
// its address and endpoint stay until Disconnect, but the host ports are
// free for others. The stored endpoint keeps no ports afterwards; ep is not
// changed. It is idempotent, and touches nothing for a container that
// publishes no port (any more).
func (m *Manager) ReleasePorts(ep *Endpoint) error {
	if ep == nil {
		return nil
	}
	if err := ep.validate(); err != nil {
		return err
	}
	return m.withLock(unix.LOCK_EX, func() error {
		ports, stored, err := m.published(ep)
		if err != nil || len(ports) == 0 {
			return err
		}
		h, err := m.openHost()
		if err != nil {
			return err
		}
		defer h.close()
		drv, err := h.driver(driver.Bridge)
		if err != nil {
			return err
		}
		cfg := ep.driverConfig()
		cfg.Ports = ports
		if err := drv.RemovePorts(driver.NetworkConfig{Name: ep.Network}, cfg); err != nil {
			return err
		}
		if stored == nil {
			return nil
		}
		stored.Ports = nil
		return m.saveEndpoint(stored)
	})
}
