package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/atomicfile"
	"github.com/FishingRodd/fockker/internal/jsonstr"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/FishingRodd/fockker/network/driver"
)

// PortMapping publishes a container port on the host: HostPort on every
// local address goes to ContainerPort of the container, for Proto "tcp" or
// "udp".
type PortMapping = driver.PortMapping

// Endpoint is a container's attachment to a network. It is stored under the
// network and is meant to be stored in the container's record too.
type Endpoint struct {
	ID       string        `json:"id"`      // container ID
	Network  string        `json:"network"` // network name
	HostVeth string        `json:"host_veth"`
	IfName   string        `json:"ifname"`
	IP       netip.Addr    `json:"ip"`
	Subnet   netip.Prefix  `json:"subnet"`
	Gateway  netip.Addr    `json:"gateway"`
	Ports    []PortMapping `json:"ports,omitempty"`
}

// Address returns the container's address with the prefix length,
// 192.168.0.2/24.
func (ep *Endpoint) Address() netip.Prefix {
	return netip.PrefixFrom(ep.IP, ep.Subnet.Bits())
}

func (ep *Endpoint) driverConfig() driver.EndpointConfig {
	return driver.EndpointConfig{ID: ep.ID, HostVeth: ep.HostVeth, IfName: ep.IfName, IP: ep.IP, Ports: ep.Ports}
}

// validateID checks a container ID, which names a file and, shortened, an
// interface.
func validateID(id string) error {
	if len(id) == 0 || len(id) > maxIDLen || !validName(id) {
		return fmt.Errorf("%w %q", ErrInvalidID, id)
	}
	return nil
}

// validate checks the names in an endpoint that came from a record, before they touch a
// path or an interface.
func (ep *Endpoint) validate() error {
	if err := ValidateName(ep.Network); err != nil {
		return err
	}
	return validateID(ep.ID)
}

// HostVethName returns the name of the host end of a container's veth
// pair: "veth" and the first 11 characters of its ID.
func HostVethName(id string) string {
	if len(id) > driver.MaxIfNameLen-len(vethPrefix) {
		id = id[:driver.MaxIfNameLen-len(vethPrefix)]
	}
	return vethPrefix + id
}

// ParsePortMapping parses HOST:CONTAINER[/tcp|/udp], e.g. "8080:80" or
// "5353:53/udp". Ports are decimal, 1 to 65535; the protocol defaults to tcp.
func ParsePortMapping(s string) (PortMapping, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return PortMapping{}, fmt.Errorf("%w %q: protocol must be tcp or udp", ErrInvalidPort, s)
	}
	hostStr, ctrStr, ok := strings.Cut(spec, ":")
	if !ok || strings.Contains(ctrStr, ":") {
		return PortMapping{}, fmt.Errorf("%w %q: want HOST_PORT:CONTAINER_PORT[/tcp|/udp]", ErrInvalidPort, s)
	}
	hostPort, err := parsePort(hostStr)
	if err != nil {
		return PortMapping{}, fmt.Errorf("%w %q: host port: %w", ErrInvalidPort, s, err)
	}
	ctrPort, err := parsePort(ctrStr)
	if err != nil {
		return PortMapping{}, fmt.Errorf("%w %q: container port: %w", ErrInvalidPort, s, err)
	}
	return PortMapping{HostPort: hostPort, ContainerPort: ctrPort, Proto: proto}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not between 1 and 65535", s)
	}
	return uint16(v), nil
}

// ParsePortMappings parses each of specs and refuses a host port given
// twice for the same protocol.
func ParsePortMappings(specs []string) ([]PortMapping, error) {
	out := make([]PortMapping, 0, len(specs))
	for _, s := range specs {
		p, err := ParsePortMapping(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := checkPortList(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkPortList(ports []PortMapping) error {
	seen := map[string]bool{}
	for _, p := range ports {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidPort, err)
		}
		key := fmt.Sprintf("%d/%s", p.HostPort, p.Proto)
		if seen[key] {
			return fmt.Errorf("%w: host port %s given twice", ErrInvalidPort, key)
		}
		seen[key] = true
	}
	return nil
}

// checkPortsFree refuses a host port that a stored endpoint already
// publishes (same protocol), or that a socket of the calling thread's
// network namespace is bound to.
func (m *Manager) checkPortsFree(ports []PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	nets, err := m.list()
	if err != nil {
		return err
	}
	for _, n := range nets {
		eps, err := m.endpoints(n.Name)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			for _, q := range ep.Ports {
				for _, p := range ports {
					if p.HostPort == q.HostPort && p.Proto == q.Proto {
						return fmt.Errorf("%w: %d/%s is published by container %s", ErrPortInUse, p.HostPort, p.Proto, ep.ID)
					}
				}
			}
		}
	}
	for _, p := range ports {
		if err := probePort(p.Proto, p.HostPort); err != nil {
			return err
		}
	}
	return nil
}

// probePort binds a socket to 0.0.0.0:port to learn whether something on
// the host holds the port. TCP sets SO_REUSEADDR so that connections in
// TIME_WAIT do not count, but listeners do.
func probePort(proto string, port uint16) error {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe host port %d/%s: %w", port, proto, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("probe host port %d/%s: %w", port, proto, os.NewSyscallError("setsockopt", err))
		}
	}
	err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(port)})
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("%w: %d/%s is in use on the host (a socket is bound to it)", ErrPortInUse, port, proto)
	}
	if err != nil {
		return fmt.Errorf("probe host port %d/%s: %w", port, proto, os.NewSyscallError("bind", err))
	}
	return nil
}

func (m *Manager) endpointPath(netName, id string) string {
	return filepath.Join(m.endpointDir(netName), id+".json")
}

// endpoints reads the stored endpoints of a network, sorted by ID.
func (m *Manager) endpoints(netName string) ([]*Endpoint, error) {
	entries, err := os.ReadDir(m.endpointDir(netName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: list endpoints: %w", netName, err)
	}
	var out []*Endpoint
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || validateID(id) != nil {
			continue // temp files
		}
		ep, err := m.loadEndpoint(netName, id)
		if err != nil {
			return nil, err
		}
		if ep != nil {
			out = append(out, ep)
		}
	}
	return out, nil
}

// endpointRecord is an endpoint as stored under its network, with the
// container's process as it was when connected.
type endpointRecord struct {
	Endpoint
	Process *process `json:"process,omitempty"`
}

// process identifies a process beyond its PID, which may be reused: by its
// start time, in clock ticks after boot (field 22 of /proc/<pid>/stat).
type process struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procStat returns the state and start time of process pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := smallfile.Read("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	state, start, err = parseProcStat(b)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return state, start, nil
}

// parseProcStat reads field 3 (state) and 22 (start time) of a
// /proc/<pid>/stat line.
func parseProcStat(b []byte) (state byte, start uint64, err error) {
	// The command name, field 2, is in parentheses and may hold anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("too few fields")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("start time: %w", err)
	}
	return f[0][0], start, nil
}

func processOf(pid int) (*process, error) {
	_, start, err := procStat(pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	return &process{Pid: pid, Start: start}, nil
}

// exited reports whether the process is gone: no such PID, another
// process under it, or a zombie (which has left its namespaces). Any
// doubt counts as running.
func (p *process) exited() bool {
	if p == nil || p.Pid <= 0 {
		return false
	}
	state, start, err := procStat(p.Pid)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		return false
	}
	return start != p.Start || state == 'Z' || state == 'X'
}

// loadEndpoint reads a stored endpoint; a missing one gives nil, nil.
func (m *Manager) loadEndpoint(netName, id string) (*Endpoint, error) {
	rec, err := m.loadEndpointRecord(netName, id)
	if err != nil || rec == nil {
		return nil, err
	}
	return &rec.Endpoint, nil
}

// loadEndpointRecord reads a stored endpoint with its process; a missing
// one gives nil, nil.
func (m *Manager) loadEndpointRecord(netName, id string) (*endpointRecord, error) {
	b, err := smallfile.Read(m.endpointPath(netName, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: read endpoint %s: %w", netName, id, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		// Emptied by a crash of the machine (see saveEndpoint), which took
		// down whatever the endpoint described: only its ID is left to
		// release.
		return &endpointRecord{Endpoint: Endpoint{
			ID: id, Network: netName, HostVeth: HostVethName(id), IfName: driver.ContainerIfName,
		}}, nil
	}
	if rec, ok := decodeRecord(b); ok {
		return rec, nil
	}
	var rec endpointRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("network %s: parse endpoint %s: %w", netName, id, err)
	}
	return &rec, nil
}

// saveEndpoint replaces the stored endpoint atomically (a complete file
// renamed into place) but syncs nothing. The record exists so that what a
// container was given (veth, rules, address) can be found after its
// fockker process died, and the page cache keeps it for that; what a crash
// of the whole machine may lose of it (the file, or its content: see
// loadEndpointRecord) is a veth and rules that the crash removed with the
// kernel's state.
//
// The file written and renamed is the spare that removeEndpoint left, if
// there is one, rather than a new temporary file (see ipam.DiskStore on
// what creating a file costs).
func (m *Manager) saveEndpoint(rec *endpointRecord) error {
	ep := &rec.Endpoint
	b := marshalRecord(rec)
	if err := os.MkdirAll(m.endpointDir(ep.Network), 0o755); err != nil {
		return fmt.Errorf("network %s: %w", ep.Network, err)
	}
	path := m.endpointPath(ep.Network, ep.ID)
	if replaceWithSpare(m.spare("endpoint"), path, b) {
		return nil
	}
	if err := atomicfile.Write(path, b, 0o644, atomicfile.Replace); err != nil {
		return fmt.Errorf("network %s: write endpoint %s: %w", ep.Network, ep.ID, err)
	}
	return nil
}

// marshalRecord returns what json.MarshalIndent(rec, "", "  ") does,
// written out by hand: encoding/json spends some 0.2 ms building its
// encoders for the type in each new process, on the path of every run.
// Strings that would need escaping are left to encoding/json.
func marshalRecord(rec *endpointRecord) []byte {
	ep := &rec.Endpoint
	b := make([]byte, 0, 512)
	b = append(b, "{\n"...)
	str := func(indent, key, v string) {
		b = append(b, indent+`"`+key+`": `...)
		b = jsonstr.Append(b, v)
		b = append(b, ",\n"...)
	}
	num := func(indent, key string, v uint64, last bool) {
		b = append(b, indent+`"`+key+`": `...)
		b = strconv.AppendUint(b, v, 10)
		if !last {
			b = append(b, ',')
		}
		b = append(b, '\n')
	}
	str("  ", "id", ep.ID)
	str("  ", "network", ep.Network)
	str("  ", "host_veth", ep.HostVeth)
	str("  ", "ifname", ep.IfName)
	str("  ", "ip", textOf(ep.IP))
	str("  ", "subnet", textOf(ep.Subnet))
	str("  ", "gateway", textOf(ep.Gateway))
	if len(ep.Ports) > 0 {
		b = append(b, `  "ports": [`+"\n"...)
		for i, p := range ep.Ports {
			b = append(b, "    {\n"...)
			num("      ", "host_port", uint64(p.HostPort), false)
			num("      ", "container_port", uint64(p.ContainerPort), false)
			b = append(b, `      "proto": `...)
			b = jsonstr.Append(b, p.Proto)
			b = append(b, "\n    }"...)
			if i < len(ep.Ports)-1 {
				b = append(b, ',')
			}
			b = append(b, '\n')
		}
		b = append(b, "  ],\n"...)
	}
	if p := rec.Process; p != nil {
		b = append(b, `  "process": {`+"\n"...)
		b = append(b, `    "pid": `...)
		b = strconv.AppendInt(b, int64(p.Pid), 10)
		b = append(b, ",\n"...)
		num("    ", "start", p.Start, true)
		b = append(b, "  },\n"...)
	}
	// The last member takes no comma.
	b = append(b[:len(b)-2], "\n}"...)
	return b
}

// textOf returns what encoding/json writes for v, a TextMarshaler of
// package netip whose text never fails.
func textOf(v interface{ MarshalText() ([]byte, error) }) string {
	t, _ := v.MarshalText()
	return string(t)
}

// removeEndpoint removes the stored endpoint, keeping its file as the spare
// unless there is one already.
func (m *Manager) removeEndpoint(netName, id string) error {
	path := m.endpointPath(netName, id)
	if smallfile.Keep(path, m.spare("endpoint")) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network %s: remove endpoint %s: %w", netName, id, err)
	}
	return nil
}

// spare returns the path of the spare file called name.
func (m *Manager) spare(name string) string { return filepath.Join(m.root, spareDirName, name) }

// replaceWithSpare writes data over the file at spare, in place (cut to
// data's length if it was longer, never truncated to nothing first, which
// would make ext4 write it out on close), and renames it to path, and
// reports whether it did. Without a spare, or on any failure, it does
// nothing the caller needs to undo: path is untouched.
func replaceWithSpare(spare, path string, data []byte) bool {
	return smallfile.Overwrite(spare, data) == nil && unix.Rename(spare, path) == nil
}
