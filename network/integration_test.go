package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/FishingRodd/fockker/network/driver"
	"github.com/FishingRodd/fockker/network/iptables"
)

// testbed is a "host" namespace where the manager runs, an "uplink"
// namespace it reaches through uplink0 (10.200.0.0/24; the uplink has no
// route back to container subnets, so only masqueraded traffic is
// answered), and an "outside" client namespace behind ext0
// (10.201.0.0/24, default route via the host).
type testbed struct {
	host, uplink, outside *netNS
	root                  string
	m                     *Manager
}

type backend struct {
	name     string
	multi    string // xtables multi-call binary behind "iptables"
	version  string // what "iptables -V" must say
	brNF     string // net.bridge.bridge-nf-call-iptables in the host namespace
	fwPolicy string // policy of the host's FORWARD chain
}

// useBackend puts "iptables" of the wanted backend first in $PATH, for the
// manager (which runs iptables-save and iptables-restore from there) and
// for the test's own checks.
func useBackend(t *testing.T, b backend) {
	t.Helper()
	bin, err := exec.LookPath(b.multi)
	if err != nil {
		t.Skipf("%s not installed: %v", b.multi, err)
	}
	dir := t.TempDir()
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore"} {
		if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out := run(t, "iptables", "-V")
	if !strings.Contains(out, b.version) {
		t.Fatalf("iptables -V = %q, want %s", out, b.version)
	}
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	tb := &testbed{
		host:    newNS(t, "host"),
		uplink:  newNS(t, "up"),
		outside: newNS(t, "out"),
		root:    t.TempDir(),
	}
	link(t, tb.host, "uplink0", "10.200.0.1/24", tb.uplink, "eth0", "10.200.0.2/24")
	link(t, tb.host, "ext0", "10.201.0.1/24", tb.outside, "eth0", "10.201.0.2/24")
	tb.outside.run(t, "ip", "route", "add", "default", "via", "10.201.0.1")
	tb.m = NewManager(tb.root)
	return tb
}

// in runs fn in the host namespace.
func (tb *testbed) in(t *testing.T, fn func()) {
	t.Helper()
	tb.host.do(t, fn)
}

func (tb *testbed) snapshot(t *testing.T) string {
	t.Helper()
	return snapshot(t, tb.host, tb.root)
}

func (tb *testbed) mustUnchanged(t *testing.T, before, what string) {
	t.Helper()
	if after := tb.snapshot(t); after != before {
		t.Fatalf("%s changed the host:\n--- before\n%s\n--- after\n%s", what, before, after)
	}
}

func (tb *testbed) connect(t *testing.T, netName, id string, c *netNS, ports ...PortMapping) *Endpoint {
	t.Helper()
	var ep *Endpoint
	var err error
	tb.in(t, func() { ep, err = tb.m.Connect(netName, id, c.pid, ports) })
	if err != nil {
		t.Fatalf("Connect(%s, %s): %v", netName, id, err)
	}
	return ep
}

func TestEndToEnd(t *testing.T) {
	requireRoot(t)
	for _, b := range []backend{
		{"nft-brnf1-drop", "xtables-nft-multi", "nf_tables", "1", "DROP"},
		{"nft-brnf0-accept", "xtables-nft-multi", "nf_tables", "0", "ACCEPT"},
		{"legacy-brnf1-accept", "xtables-legacy-multi", "legacy", "1", "ACCEPT"},
		{"legacy-brnf0-drop", "xtables-legacy-multi", "legacy", "0", "DROP"},
	} {
		t.Run(b.name, func(t *testing.T) {
			useBackend(t, b)
			endToEnd(t, b)
		})
	}
}

func endToEnd(t *testing.T, b backend) {
	tb := newTestbed(t)
	h := tb.host
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		h.run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+b.brNF)
	} else {
		t.Logf("br_netfilter not available: bridged traffic never reaches iptables")
	}
	h.run(t, "iptables", "-w", "-P", "FORWARD", b.fwPolicy)
	pristine := tb.snapshot(t)

	// Networks: fockker0, one from the pool, one /16.
	var def, pooled, wide *Network
	var err error
	tb.in(t, func() {
		if def, err = tb.m.EnsureDefault(); err != nil {
			t.Fatalf("EnsureDefault: %v", err)
		}
		if pooled, err = tb.m.Create("fknet1", "", ""); err != nil {
			t.Fatalf("Create fknet1: %v", err)
		}
		if wide, err = tb.m.Create("fknet2", "bridge", "10.88.0.0/16"); err != nil {
			t.Fatalf("Create fknet2: %v", err)
		}
	})
	if def.IPRange() != "192.168.0.1/24" || def.Bridge != DefaultName || def.Driver != "bridge" {
		t.Fatalf("default network %+v", def)
	}
	if wide.Gateway.String() != "10.88.0.1" || wide.Subnet.Bits() != 16 {
		t.Fatalf("wide network %+v", wide)
	}
	if pooled.Subnet.String() != "172.18.0.0/24" || pooled.IPRange() != "172.18.0.1/24" {
		t.Fatalf("pooled network %+v", pooled)
	}
	if out := h.run(t, "ip", "-4", "-o", "addr", "show", "dev", "fockker0"); !strings.Contains(out, "192.168.0.1/24") {
		t.Fatalf("fockker0 address: %s", out)
	}
	if out := h.run(t, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(out) != "1" {
		t.Fatalf("ip_forward = %q", out)
	}
	var list []*Network
	tb.in(t, func() { list, err = tb.m.List() })
	if err != nil || len(list) != 3 || list[0].Name != "fknet1" || list[1].Name != "fknet2" || list[2].Name != "fockker0" {
		t.Fatalf("List = %v, %v", list, err)
	}
	// Creating twice does not duplicate rules.
	tb.in(t, func() {
		if _, err := tb.m.EnsureDefault(); err != nil {
			t.Fatal(err)
		}
	})
	rules := h.run(t, "iptables-save")
	if n := strings.Count(rules, "fockker:net:fockker0"); n != len(testNetworkRules("fockker0")) {
		t.Fatalf("%d rules of fockker0 after EnsureDefault twice:\n%s", n, rules)
	}

	// Bad networks change nothing.
	before := tb.snapshot(t)
	for _, tc := range []struct {
		name, drv, subnet string
		want              error
	}{
		{"fknet3", "bridge", "192.168.0.128/25", ErrOverlap}, // inside fockker0
		{"fknet3", "bridge", "10.0.0.0/8", ErrOverlap},       // contains fknet2
		{"fknet3", "bridge", "10.200.0.0/16", ErrOverlap},    // host address of uplink0
		{"fknet3", "bridge", "300.0.0.0/24", ErrInvalidSubnet},
		{"fknet3", "bridge", "10.77.0.1/24", ErrInvalidSubnet},
		{"fknet1", "bridge", "", ErrExists},
		{"uplink0", "bridge", "", ErrNameTaken},
		{"fknet3", "macvlan", "", driver.ErrUnsupported},
		{"sixteen-bytes-xx", "bridge", "", ErrInvalidName},
	} {
		tb.in(t, func() { _, err = tb.m.Create(tc.name, tc.drv, tc.subnet) })
		if !errors.Is(err, tc.want) {
			t.Fatalf("Create(%q, %q, %q) = %v, want %v", tc.name, tc.drv, tc.subnet, err, tc.want)
		}
		t.Logf("refused as expected: %v", err)
	}
	tb.mustUnchanged(t, before, "refused network creation")

	// Containers: c1 and c2 on fockker0, c3 on fknet2.
	c1, c2, c3 := startContainer(t), startContainer(t), startContainer(t)
	ep1 := tb.connect(t, DefaultName, "c1aaaaaaaa01", c1, pm(8080, 80, "tcp"), pm(5353, 53, "udp"))
	if ep1.IP.String() != "192.168.0.2" || ep1.HostVeth != "vethc1aaaaaaaa0" || ep1.IfName != "eth0" || ep1.Address().String() != "192.168.0.2/24" {
		t.Fatalf("endpoint 1: %+v", ep1)
	}
	hostLinks := h.run(t, "ip", "-o", "link", "show", "vethc1aaaaaaaa0")
	if !strings.Contains(hostLinks, "master fockker0") || !strings.Contains(hostLinks, "UP") {
		t.Fatalf("host end: %s", hostLinks)
	}
	if out := h.run(t, "cat", "/sys/class/net/vethc1aaaaaaaa0/brport/hairpin_mode"); strings.TrimSpace(out) != "1" {
		t.Fatalf("hairpin mode of the host end: %q", out)
	}
	if out := c1.run(t, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, ",UP") || !strings.Contains(out, "mtu 1500 ") {
		t.Fatalf("container end: %s", out)
	}
	if out := c1.run(t, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "192.168.0.2/24 brd 192.168.0.255 ") {
		t.Fatalf("container address: %s", out)
	}
	if out := c1.run(t, "ip", "route"); !strings.Contains(out, "default via 192.168.0.1 dev eth0") {
		t.Fatalf("container routes: %s", out)
	}
	if out := c1.run(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
		t.Fatalf("container lo: %s", out)
	}

	// Port conflicts and double connects are refused, changing nothing.
	var hostListener net.Listener
	tb.in(t, func() {
		if hostListener, err = net.Listen("tcp4", "127.0.0.1:9090"); err != nil {
			t.Fatal(err)
		}
	})
	before = tb.snapshot(t)
	for _, tc := range []struct {
		net, id string
		ports   []PortMapping
		want    error
	}{
		{DefaultName, "c2bbbbbbbb02", []PortMapping{pm(7070, 70, "tcp"), pm(8080, 81, "tcp")}, ErrPortInUse}, // mapped by c1
		{"fknet2", "c2bbbbbbbb02", []PortMapping{pm(5353, 53, "udp")}, ErrPortInUse},                         // mapped by c1, other network
		{DefaultName, "c2bbbbbbbb02", []PortMapping{pm(9090, 80, "tcp")}, ErrPortInUse},                      // host listener
		{DefaultName, "c1aaaaaaaa01", nil, ErrConnected},
		{"nosuchnet", "c2bbbbbbbb02", nil, ErrNotFound},
	} {
		tb.in(t, func() { _, err = tb.m.Connect(tc.net, tc.id, c2.pid, tc.ports) })
		if !errors.Is(err, tc.want) {
			t.Fatalf("Connect(%s, %s, %v) = %v, want %v", tc.net, tc.id, tc.ports, err, tc.want)
		}
		t.Logf("refused as expected: %v", err)
	}
	tb.mustUnchanged(t, before, "refused connect")
	hostListener.Close()
	// The same port on the other protocol is fine.
	ep2 := tb.connect(t, DefaultName, "c2bbbbbbbb02", c2, pm(8080, 8080, "udp"))
	ep3 := tb.connect(t, "fknet2", "c3cccccccc03", c3)
	// A class A address on a /16: the netmask and broadcast are the network's.
	if out := c3.run(t, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.88.0.2/16 brd 10.88.255.255 ") {
		t.Fatalf("container address on fknet2: %s", out)
	}
	if out := c3.run(t, "ip", "route"); !strings.Contains(out, "default via 10.88.0.1 dev eth0") || !strings.Contains(out, "10.88.0.0/16 dev eth0") {
		t.Fatalf("container routes on fknet2: %s", out)
	}
	if ep2.IP.String() != "192.168.0.3" || ep3.IP.String() != "10.88.0.2" {
		t.Fatalf("addresses %s %s", ep2.IP, ep3.IP)
	}
	var eps []*Endpoint
	tb.in(t, func() { eps, err = tb.m.Endpoints(DefaultName) })
	if err != nil || len(eps) != 2 || eps[0].ID != "c1aaaaaaaa01" || eps[1].ID != "c2bbbbbbbb02" {
		t.Fatalf("Endpoints = %v, %v", eps, err)
	}

	startEcho(t, c1, "tcp", 80)
	startEcho(t, c1, "udp", 53)
	startEcho(t, c2, "tcp", 80)
	startEcho(t, c3, "tcp", 80)
	startEcho(t, tb.uplink, "tcp", 7000)

	// ICMP: gateway and neighbour.
	for _, p := range []struct {
		from *netNS
		to   string
	}{{c1, "192.168.0.1"}, {c1, "192.168.0.3"}, {c2, "192.168.0.2"}, {c3, "10.88.0.1"}} {
		if err := ping(t, p.from, p.to); err != nil {
			t.Fatal(err)
		}
	}
	// Seed scenario: the host reaches the container's listener by its address.
	mustEcho(t, h, "tcp", "192.168.0.2:80", "192.168.0.1")
	// Containers on one network reach each other directly.
	mustEcho(t, c2, "tcp", "192.168.0.2:80", "192.168.0.3")
	mustEcho(t, c1, "tcp", "192.168.0.3:80", "192.168.0.2")
	// Published ports from outside keep the client's address.
	mustEcho(t, tb.outside, "tcp", "10.201.0.1:8080", "10.201.0.2")
	mustEcho(t, tb.outside, "udp", "10.201.0.1:5353", "10.201.0.2")
	// From the host itself, to its own address and to localhost.
	mustEcho(t, h, "tcp", "10.200.0.1:8080", "10.200.0.1")
	mustEcho(t, h, "tcp", "127.0.0.1:8080", "192.168.0.1")
	// Hairpin: containers through the host's published port.
	mustEcho(t, c2, "tcp", "10.201.0.1:8080", "192.168.0.1")
	mustEcho(t, c1, "tcp", "10.201.0.1:8080", "192.168.0.1")
	// Outbound is masqueraded behind the host's uplink address.
	mustEcho(t, c1, "tcp", "10.200.0.2:7000", "10.200.0.1")
	mustEcho(t, c3, "tcp", "10.200.0.2:7000", "10.200.0.1")
	// Networks are isolated from each other.
	mustNotReach(t, c3, "192.168.0.2:80")
	mustNotReach(t, c1, "10.88.0.2:80")
	if err := ping(t, c1, "10.88.0.2"); err == nil {
		if _, lookErr := exec.LookPath("busybox"); lookErr == nil {
			t.Fatal("c1 pinged c3 across networks")
		}
	}
	// Outside clients cannot bypass the published ports.
	mustNotReach(t, tb.outside, "192.168.0.2:80")

	// Stop: port rules go, the address stays.
	tb.in(t, func() { err = tb.m.ReleasePorts(ep1) })
	if err != nil {
		t.Fatal(err)
	}
	tb.in(t, func() { err = tb.m.ReleasePorts(ep1) })
	if err != nil {
		t.Fatalf("second ReleasePorts: %v", err)
	}
	if rules := h.run(t, "iptables-save"); strings.Contains(rules, "fockker:ctr:c1aaaaaaaa01") {
		t.Fatalf("port rules of c1 left after ReleasePorts:\n%s", rules)
	}
	if _, err := tcpEcho(t, tb.outside, "10.201.0.1:8080", "x"); err == nil {
		t.Fatal("published port still answers after ReleasePorts")
	}
	if _, err := os.Stat(filepath.Join(tb.root, "network", DefaultName, "ipam", "192.168.0.2")); err != nil {
		t.Fatalf("address of a stopped container must stay allocated: %v", err)
	}
	// Its port can now be published by another container.
	c4 := startContainer(t)
	ep4 := tb.connect(t, DefaultName, "c4dddddddd04", c4, pm(8080, 80, "tcp"))
	if ep4.IP.String() != "192.168.0.4" {
		t.Fatalf("c4 address %s", ep4.IP)
	}

	// rm: everything of c1 goes; twice is fine.
	for i := 0; i < 2; i++ {
		tb.in(t, func() { err = tb.m.Disconnect(ep1) })
		if err != nil {
			t.Fatalf("Disconnect #%d: %v", i+1, err)
		}
	}
	if out, err := h.try("ip", "link", "show", ep1.HostVeth); err == nil {
		t.Fatalf("host veth left: %s", out)
	}
	if out := c1.run(t, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("container eth0 left: %s", out)
	}
	if _, err := os.Stat(filepath.Join(tb.root, "network", DefaultName, "ipam", "192.168.0.2")); !os.IsNotExist(err) {
		t.Fatalf("address of c1 still allocated: %v", err)
	}

	// network rm refuses while containers are attached, then is forced.
	tb.in(t, func() { err = tb.m.Remove(DefaultName, false) })
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "c2bbbbbbbb02") {
		t.Fatalf("Remove in use = %v", err)
	}
	// The default bridge vanishes (a reboot): EnsureDefault rebuilds it.
	h.run(t, "ip", "link", "del", "fockker0")
	tb.in(t, func() { _, err = tb.m.EnsureDefault() })
	if err != nil {
		t.Fatal(err)
	}
	if out := h.run(t, "ip", "-4", "-o", "addr", "show", "dev", "fockker0"); !strings.Contains(out, "192.168.0.1/24") {
		t.Fatalf("re-created fockker0: %s", out)
	}

	for _, name := range []string{DefaultName, "fknet2"} {
		tb.in(t, func() { err = tb.m.Remove(name, true) })
		if err != nil {
			t.Fatalf("Remove(%s, force): %v", name, err)
		}
	}
	// Disconnect after the network went is still fine.
	tb.in(t, func() { err = tb.m.Disconnect(ep2) })
	if err != nil {
		t.Fatalf("Disconnect after forced Remove: %v", err)
	}
	rules = h.run(t, "iptables-save")
	if !strings.Contains(rules, "fockker:net:fknet1") || strings.Contains(rules, "fockker:net:fockker0") {
		t.Fatalf("rules after removing fockker0:\n%s", rules)
	}
	tb.in(t, func() { err = tb.m.Remove("fknet1", false) })
	if err != nil {
		t.Fatal(err)
	}
	tb.in(t, func() { err = tb.m.Remove("fknet1", false) })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}

	// Nothing is left: no veth, no bridge, no rule, no chain, no state.
	if rules := h.run(t, "iptables-save"); strings.Contains(strings.ToLower(rules), "fockker") {
		t.Fatalf("rules left:\n%s", rules)
	}
	entries, _ := os.ReadDir(filepath.Join(tb.root, "network"))
	if len(entries) != 1 || entries[0].Name() != lockFileName {
		t.Fatalf("state left: %v", entries)
	}
	os.Remove(filepath.Join(tb.root, "network", lockFileName))
	os.Remove(filepath.Join(tb.root, "network"))
	tb.mustUnchanged(t, pristine, "the whole life cycle")
}

func testNetworkRules(name string) []iptables.Rule {
	return iptables.NetworkRules(name, name, netip.MustParsePrefix("192.168.0.0/24"))
}

// Failures half-way through Connect undo everything, and never touch
// interfaces that were there before.
func TestConnectRollback(t *testing.T) {
	requireRoot(t)
	tb := newTestbed(t)
	h := tb.host
	tb.in(t, func() {
		if _, err := tb.m.Create("rbnet", "", "10.90.0.0/24"); err != nil {
			t.Fatal(err)
		}
	})
	before := tb.snapshot(t)
	var err error

	// The container already has an eth0: the veth pair cannot be made.
	c1 := startContainer(t)
	c1.run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	tb.in(t, func() { _, err = tb.m.Connect("rbnet", "rb1", c1.pid, []PortMapping{pm(8080, 80, "tcp")}) })
	if !errors.Is(err, driver.ErrLinkExists) {
		t.Fatalf("Connect with eth0 taken = %v", err)
	}
	t.Logf("refused as expected: %v", err)
	tb.mustUnchanged(t, before, "failed connect (eth0 taken)")

	// The host end's name is taken by an interface that is not ours: it
	// must survive the rollback.
	c2 := startContainer(t)
	h.run(t, "ip", "link", "add", "vethrb2", "type", "veth", "peer", "name", "other2")
	before = tb.snapshot(t)
	tb.in(t, func() { _, err = tb.m.Connect("rbnet", "rb2", c2.pid, nil) })
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("Connect with host veth name taken = %v", err)
	}
	tb.mustUnchanged(t, before, "failed connect (host name taken)")
	if out := c2.run(t, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("container end left: %s", out)
	}
	h.run(t, "ip", "link", "del", "vethrb2")

	// iptables-restore fails to add the DNAT rule after the veth pair is
	// up: the pair, the address and the endpoint go again.
	t.Run("port rule fails", func(t *testing.T) {
		real, err := exec.LookPath("iptables-restore")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		script := "#!/bin/sh\n" +
			"input=$(cat)\n" +
			"case \"$input\" in *\"-A FOCKKER \"*\"-j DNAT\"*) echo injected failure >&2; exit 1;; esac\n" +
			"printf '%s\\n' \"$input\" | exec " + real + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(dir, "iptables-restore"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		c := startContainer(t)
		before := tb.snapshot(t)
		tb.in(t, func() { _, err = tb.m.Connect("rbnet", "rb5", c.pid, []PortMapping{pm(8080, 80, "tcp")}) })
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("Connect with failing iptables = %v", err)
		}
		t.Logf("failed as injected: %v", err)
		tb.mustUnchanged(t, before, "connect failing at the port rule")
		if out := c.run(t, "ip", "-o", "link"); strings.Contains(out, "eth0") {
			t.Fatalf("container end left: %s", out)
		}
	})

	// --net none: only lo, up.
	if out := c2.run(t, "ip", "-o", "link", "show", "lo"); strings.Contains(out, ",UP") {
		t.Fatalf("lo of a fresh namespace is already up: %s", out)
	}
	if err := loopbackUp(c2.pid); err != nil {
		t.Fatal(err)
	}
	if out := c2.run(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, ",UP") {
		t.Fatalf("lo not up: %s", out)
	}

	// A process in the host's own namespace is refused.
	hostProc := h.cmd("sleep", "600")
	if err := hostProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostProc.Process.Kill(); hostProc.Wait() })
	waitFor(t, "sleep in host namespace", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", hostProc.Process.Pid))
		return err == nil && string(b) == "sleep\n"
	})
	before = tb.snapshot(t)
	tb.in(t, func() { _, err = tb.m.Connect("rbnet", "rb3", hostProc.Process.Pid, nil) })
	if !errors.Is(err, driver.ErrSameNamespace) {
		t.Fatalf("Connect of a host process = %v", err)
	}
	// A pid that does not exist.
	tb.in(t, func() { _, err = tb.m.Connect("rbnet", "rb4", 1<<22+7, nil) })
	if err == nil {
		t.Fatal("Connect of a missing pid succeeded")
	}
	tb.mustUnchanged(t, before, "refused connects")

	// Ten containers connecting at once get ten addresses.
	var wg sync.WaitGroup
	eps := make([]*Endpoint, 10)
	errs := make([]error, 10)
	ctrs := make([]*netNS, 10)
	for i := range ctrs {
		ctrs[i] = startContainer(t)
	}
	for i := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb.host.do(t, func() {
				eps[i], errs[i] = tb.m.Connect("rbnet", fmt.Sprintf("par%02d", i), ctrs[i].pid, []PortMapping{pm(uint16(9000+i), 80, "tcp")})
			})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ep := range eps {
		if errs[i] != nil {
			t.Fatalf("parallel connect %d: %v", i, errs[i])
		}
		if seen[ep.IP.String()] {
			t.Fatalf("address %s given twice", ep.IP)
		}
		seen[ep.IP.String()] = true
	}
	tb.in(t, func() { err = tb.m.Remove("rbnet", true) })
	if err != nil {
		t.Fatal(err)
	}
	if out := h.run(t, "ip", "-o", "link"); strings.Contains(out, "veth") || strings.Contains(out, "rbnet") {
		t.Fatalf("links left: %s", out)
	}
	if rules := h.run(t, "iptables-save"); strings.Contains(strings.ToLower(rules), "fockker") {
		t.Fatalf("rules left:\n%s", rules)
	}
}

// run calls EnsureDefault and Connect back to back: Connect trusts what
// EnsureDefault has just made sure of, but still rebuilds a bridge that
// vanished in between.
func TestConnectRightAfterEnsureDefault(t *testing.T) {
	requireRoot(t)
	tb := newTestbed(t)
	h := tb.host
	c1, c2 := startContainer(t), startContainer(t)
	var ep1, ep2 *Endpoint
	var err error
	tb.in(t, func() {
		if _, err = tb.m.EnsureDefault(); err == nil {
			ep1, err = tb.m.Connect(DefaultName, "ens1", c1.pid, nil)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	tb.in(t, func() { _, err = tb.m.EnsureDefault() })
	if err != nil {
		t.Fatal(err)
	}
	h.run(t, "ip", "link", "del", DefaultName)
	tb.in(t, func() { ep2, err = tb.m.Connect(DefaultName, "ens2", c2.pid, nil) })
	if err != nil {
		t.Fatalf("Connect after the bridge vanished: %v", err)
	}
	if out := h.run(t, "ip", "-4", "-o", "addr", "show", "dev", DefaultName); !strings.Contains(out, "192.168.0.1/24") {
		t.Fatalf("re-created fockker0: %s", out)
	}
	if out := h.run(t, "ip", "-o", "link", "show", "master", DefaultName); !strings.Contains(out, ep2.HostVeth+"@") {
		t.Fatalf("ports of the re-created fockker0: %s", out)
	}
	if rules := h.run(t, "iptables-save"); strings.Count(rules, "fockker:net:fockker0") != len(testNetworkRules(DefaultName)) {
		t.Fatalf("rules of fockker0:\n%s", rules)
	}
	if err := ping(t, c2, "192.168.0.1"); err != nil {
		t.Fatalf("the container cannot reach the re-created gateway: %v", err)
	}
	for _, ep := range []*Endpoint{ep1, ep2} {
		tb.in(t, func() { err = tb.m.Disconnect(ep) })
		if err != nil {
			t.Fatal(err)
		}
	}
	tb.in(t, func() { err = tb.m.Remove(DefaultName, false) })
	if err != nil {
		t.Fatal(err)
	}
}

// A container whose process exited: Disconnect leaves the veth pair to the
// kernel (it goes with the namespace) yet returns only once it is gone,
// and removes the port rules and the address, whether or not a stop
// released the ports first. Both backends.
func TestDisconnectAfterExit(t *testing.T) {
	requireRoot(t)
	for _, b := range []backend{
		{"nft", "xtables-nft-multi", "nf_tables", "0", "ACCEPT"},
		{"legacy", "xtables-legacy-multi", "legacy", "0", "ACCEPT"},
	} {
		t.Run(b.name, func(t *testing.T) {
			useBackend(t, b)
			tb := newTestbed(t)
			h := tb.host
			pristine := tb.snapshot(t)
			var err error
			tb.in(t, func() { _, err = tb.m.EnsureDefault() })
			if err != nil {
				t.Fatal(err)
			}
			for i, released := range []bool{false, true} {
				c := startContainer(t)
				id := fmt.Sprintf("exited%02d", i)
				ep := tb.connect(t, DefaultName, id, c, pm(8080, 80, "tcp"))
				var rec endpointRecord
				if b, err := os.ReadFile(filepath.Join(tb.root, "network", DefaultName, "endpoints", id+".json")); err != nil {
					t.Fatal(err)
				} else if err := json.Unmarshal(b, &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Process == nil || rec.Process.Pid != c.pid || rec.Process.exited() {
					t.Fatalf("stored process %+v, container pid %d", rec.Process, c.pid)
				}
				if released {
					tb.in(t, func() { err = tb.m.ReleasePorts(ep) })
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := unix.Kill(c.pid, unix.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the container to exit", rec.Process.exited)
				tb.in(t, func() { err = tb.m.Disconnect(ep) })
				if err != nil {
					t.Fatal(err)
				}
				if out, err := h.try("ip", "-o", "link", "show", ep.HostVeth); err == nil {
					t.Fatalf("veth left: %s", out)
				}
				if rules := h.run(t, "iptables-save"); strings.Contains(rules, iptables.ContainerComment(id)) {
					t.Fatalf("port rules left:\n%s", rules)
				}
				if _, err := os.Stat(filepath.Join(tb.root, "network", DefaultName, "ipam", ep.IP.String())); !os.IsNotExist(err) {
					t.Fatalf("address still allocated: %v", err)
				}
			}
			tb.in(t, func() { err = tb.m.Remove(DefaultName, false) })
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(tb.root, "network", lockFileName))
			os.Remove(filepath.Join(tb.root, "network"))
			tb.mustUnchanged(t, pristine, "containers that exited")
		})
	}
}

// loopbackUp brings up lo in the network namespace of process pid (the engine's init does
// this itself for its containers; the test's stand-in containers need it done for them).
func loopbackUp(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("loopback: invalid pid %d", pid)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("loopback: network namespace of pid %d: %w", pid, err)
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("loopback: netlink: %w", err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: find lo of pid %d: %w", pid, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback: bring up lo of pid %d: %w", pid, err)
	}
	return nil
}
