package network

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/FishingRodd/fockker/network/driver"
)

func pm(host, ctr uint16, proto string) PortMapping {
	return PortMapping{HostPort: host, ContainerPort: ctr, Proto: proto}
}

func TestParsePortMapping(t *testing.T) {
	tests := []struct {
		in   string
		want PortMapping
		ok   bool
	}{
		{"8080:80", pm(8080, 80, "tcp"), true},
		{"8080:80/tcp", pm(8080, 80, "tcp"), true},
		{"53:5353/udp", pm(53, 5353, "udp"), true},
		{"53:53/UDP", pm(53, 53, "udp"), true},
		{"65535:1", pm(65535, 1, "tcp"), true},
		{"", PortMapping{}, false},
		{"80", PortMapping{}, false},
		{":80", PortMapping{}, false},
		{"80:", PortMapping{}, false},
		{"0:80", PortMapping{}, false},
		{"80:0", PortMapping{}, false},
		{"65536:80", PortMapping{}, false},
		{"80:99999999999999999999", PortMapping{}, false},
		{"-1:80", PortMapping{}, false},
		{"+80:80", PortMapping{}, false},
		{" 80:80", PortMapping{}, false},
		{"0x50:80", PortMapping{}, false},
		{"a:b", PortMapping{}, false},
		{"80:80/sctp", PortMapping{}, false},
		{"80:80/", PortMapping{}, false},
		{"80:80/tcp/udp", PortMapping{}, false},
		{"127.0.0.1:80:80", PortMapping{}, false},
		{"8000-8010:80", PortMapping{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePortMapping(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidPort) {
					t.Fatalf("got %+v, %v; want ErrInvalidPort", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if got := (pm(8080, 80, "udp")).String(); got != "8080:80/udp" {
		t.Errorf("String() = %q", got)
	}
}

func TestParsePortMappings(t *testing.T) {
	if _, err := ParsePortMappings([]string{"8080:80", "8080:81/udp", "9090:80"}); err != nil {
		t.Fatalf("same port on tcp and udp must be fine: %v", err)
	}
	if _, err := ParsePortMappings([]string{"8080:80", "8080:81"}); !errors.Is(err, ErrInvalidPort) {
		t.Fatalf("duplicate host port: got %v", err)
	}
	if _, err := ParsePortMappings([]string{"8080:80", "x"}); !errors.Is(err, ErrInvalidPort) {
		t.Fatalf("junk: got %v", err)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"fockker0", true},
		{"testNetwork", true},
		{"a", true},
		{"net_1.b-2", true},
		{"123456789012345", true},
		{"1234567890123456", false},
		{"", false},
		{"-net", false},
		{".net", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"网络", false},
		{"none", false},
		{"host", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.name)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateName(%q) = %v", tc.name, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"10.10.0.0/24", true},
		{"10.10.0.0/16", true},
		{"10.0.0.0/8", true},
		{"10.10.0.0/30", true},
		{"10.10.0.0/31", false},
		{"10.10.0.1/32", false},
		{"10.10.0.1/24", false},
		{"300.1.1.0/24", false},
		{"10.10.0.0/33", false},
		{"10.10.0.0", false},
		{"fd00::/64", false},
		{"224.1.0.0/24", false},
		{"192.0.0.0/2", false},
		{"223.255.255.0/24", true},
		{"240.0.0.0/24", true},
		{"banana", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseSubnet(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseSubnet(%q) = %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidSubnet) {
				t.Fatalf("error %v does not wrap ErrInvalidSubnet", err)
			}
		})
	}
	_, err := ParseSubnet("192.168.0.1/24")
	if err == nil || !strings.Contains(err.Error(), "192.168.0.0/24") {
		t.Fatalf("host-bits error should suggest the network: %v", err)
	}
}

func TestPool(t *testing.T) {
	var all []netip.Prefix
	poolCandidates(func(p netip.Prefix) bool {
		all = append(all, p)
		return true
	})
	if len(all) != 14*256+255 {
		t.Fatalf("%d candidates", len(all))
	}
	if all[0].String() != "172.18.0.0/24" || all[255].String() != "172.18.255.0/24" || all[256].String() != "172.19.0.0/24" {
		t.Fatalf("unexpected order: %s %s %s", all[0], all[255], all[256])
	}
	if last := all[len(all)-1].String(); last != "192.168.255.0/24" {
		t.Fatalf("last candidate %s", last)
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range all {
		if seen[p] || p.String() == DefaultSubnet || p.Bits() != 24 || p.Masked() != p {
			t.Fatalf("bad candidate %s", p)
		}
		seen[p] = true
	}
}

func TestPickAndCheckSubnet(t *testing.T) {
	nets := []*Network{
		{Name: "a", Subnet: netip.MustParsePrefix("172.18.0.0/23")},
		{Name: "b", Subnet: netip.MustParsePrefix("172.18.2.0/24")},
	}
	host := []driver.Occupied{{Prefix: netip.MustParsePrefix("172.18.3.0/24"), What: "route 172.18.3.0/24 dev eth1"}}
	got, err := pickSubnet(nets, host)
	if err != nil || got.String() != "172.18.4.0/24" {
		t.Fatalf("pickSubnet = %s, %v", got, err)
	}
	for _, tc := range []struct {
		subnet, want string
	}{
		{"172.18.1.128/25", "network a"},
		{"172.16.0.0/12", "network a"},
		{"172.18.2.0/24", "network b"},
		{"172.18.3.4/30", "route 172.18.3.0/24"},
	} {
		err := checkSubnet(netip.MustParsePrefix(tc.subnet), nets, host)
		if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkSubnet(%s) = %v, want overlap with %s", tc.subnet, err, tc.want)
		}
	}
	if err := checkSubnet(netip.MustParsePrefix("10.0.0.0/8"), nets, host); err != nil {
		t.Errorf("10.0.0.0/8: %v", err)
	}
	// Everything taken.
	full := []driver.Occupied{{Prefix: netip.MustParsePrefix("128.0.0.0/1")}}
	if _, err := pickSubnet(nil, full); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
}

func TestHostVethName(t *testing.T) {
	for id, want := range map[string]string{
		"7120030368":       "veth7120030368",
		"abcdef0123456789": "vethabcdef01234",
		"a":                "vetha",
	} {
		got := HostVethName(id)
		if got != want || len(got) > driver.MaxIfNameLen {
			t.Errorf("HostVethName(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestEndpointJSON(t *testing.T) {
	ep := &Endpoint{
		ID: "c1", Network: "n", HostVeth: "vethc1", IfName: "eth0",
		IP: netip.MustParseAddr("192.168.0.2"), Subnet: netip.MustParsePrefix("192.168.0.0/24"),
		Gateway: netip.MustParseAddr("192.168.0.1"), Ports: []PortMapping{pm(8080, 80, "tcp")},
	}
	b, err := json.Marshal(ep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"ip":"192.168.0.2"`) || !strings.Contains(string(b), `"host_port":8080`) {
		t.Fatalf("unexpected JSON %s", b)
	}
	var back Endpoint
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.IP != ep.IP || back.Address().String() != "192.168.0.2/24" || back.Ports[0] != ep.Ports[0] {
		t.Fatalf("round trip: %+v", back)
	}
	n := &Network{Gateway: netip.MustParseAddr("192.168.0.1"), Subnet: netip.MustParsePrefix("192.168.0.0/24")}
	if n.IPRange() != "192.168.0.1/24" {
		t.Fatalf("IPRange = %s", n.IPRange())
	}
}

// Bad input is refused before the manager touches anything, even the state
// directory.
func TestCreateRefusesBadInputWithoutState(t *testing.T) {
	root := t.TempDir()
	m := NewManager(root)
	for _, tc := range []struct {
		name, driver, subnet string
		want                 error
	}{
		{"bad/name", "bridge", "", ErrInvalidName},
		{"waytoolongname16", "bridge", "", ErrInvalidName},
		{"none", "", "", ErrInvalidName},
		{"ok", "macvlan", "", driver.ErrUnsupported},
		{"ok", "bridge", "10.1.2.3/24", ErrInvalidSubnet},
		{"ok", "bridge", "10.1.2.0/33", ErrInvalidSubnet},
	} {
		if _, err := m.Create(tc.name, tc.driver, tc.subnet); !errors.Is(err, tc.want) {
			t.Errorf("Create(%q, %q, %q) = %v, want %v", tc.name, tc.driver, tc.subnet, err, tc.want)
		}
	}
	if _, err := m.Connect("fockker0", "bad id", 1, nil); !errors.Is(err, ErrInvalidID) {
		t.Errorf("Connect with bad id: %v", err)
	}
	if _, err := m.Connect("fockker0", "c1", 1, []PortMapping{pm(80, 80, "tcp"), pm(80, 81, "tcp")}); !errors.Is(err, ErrInvalidPort) {
		t.Errorf("Connect with duplicate ports: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "network")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state directory was created: %v", err)
	}
	if n, err := m.List(); err != nil || len(n) != 0 {
		t.Fatalf("List on empty state = %v, %v", n, err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nope) = %v", err)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	state, start, err := parseProcStat([]byte(line))
	if err != nil || state != 'S' || start != 987654 {
		t.Fatalf("parseProcStat = %c, %d, %v", state, start, err)
	}
	for _, bad := range []string{"", "4242 (x", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 soon 1"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

// A process is running until it is reaped or a zombie, and a PID reused by
// another process does not count as the same one.
func TestProcessExited(t *testing.T) {
	self, err := processOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.exited() {
		t.Fatal("this process reported exited")
	}
	if (&process{Pid: self.Pid, Start: self.Start + 1}).exited() == false {
		t.Fatal("another start time is not the same process")
	}
	if (*process)(nil).exited() {
		t.Fatal("an unknown process reported exited")
	}
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := processOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.exited() {
		t.Fatal("running child reported exited")
	}
	cmd.Process.Kill()
	// A zombie until reaped: exited already.
	for i := 0; !p.exited(); i++ {
		if i == 1000 {
			t.Fatal("killed child never reported exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Wait()
	if !p.exited() {
		t.Fatal("reaped child not reported exited")
	}
}

// An endpoint record emptied by a crash of the machine (it is not synced)
// stands for its ID alone: it is listed, found by Holders, and Disconnect
// removes it with the address; a record holding anything else that does not
// parse is still an error.
func TestEmptyEndpointRecord(t *testing.T) {
	m := NewManager(t.TempDir())
	n := &Network{Name: "tornnet", Driver: driver.Bridge, Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		Gateway: netip.MustParseAddr("10.77.0.1"), Bridge: "tornnet"}
	if err := m.save(n); err != nil {
		t.Fatal(err)
	}
	alloc, err := m.allocator(n)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := alloc.Allocate("torn1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.endpointPath(n.Name, "torn1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eps, err := m.Endpoints(n.Name)
	if err != nil || len(eps) != 1 || eps[0].ID != "torn1" || eps[0].HostVeth != HostVethName("torn1") || len(eps[0].Ports) != 0 {
		t.Fatalf("Endpoints = %+v, %v", eps, err)
	}
	if ids, err := m.Holders(n.Name); err != nil || len(ids) != 1 || ids[0] != "torn1" {
		t.Fatalf("Holders = %v, %v", ids, err)
	}
	if err := m.Disconnect(&Endpoint{ID: "torn1", Network: n.Name, HostVeth: HostVethName("torn1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.endpointPath(n.Name, "torn1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("endpoint left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.ipamDir(n.Name), ip.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("address left: %v", err)
	}
	if ids, err := m.Holders(n.Name); err != nil || len(ids) != 0 {
		t.Fatalf("Holders after Disconnect = %v, %v", ids, err)
	}

	if err := os.WriteFile(m.endpointPath(n.Name, "bad1"), []byte(`{"id": "bad1",`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Endpoints(n.Name); err == nil {
		t.Fatal("a truncated endpoint record was accepted")
	}
}

// validName accepts exactly what the regular expression it replaces did.
func TestValidNameAsRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	inputs := []string{"", "a", "A0", "0-", "a.b_c-d", "-a", ".a", "_a", "a b", "a\n", "\na", "a/b", "é", "aé", "a\x00", strings.Repeat("x", 200)}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ09_.-/ :\n\x00é"
	for range 5000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		if got, want := validName(s), re.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
	}
}

// A removed endpoint's file is kept as the spare, and the next endpoint is
// written into it and renamed into place: no file is created, what is read
// back is exactly what was written, and the endpoints directory holds the
// endpoints only.
func TestEndpointSpare(t *testing.T) {
	m := NewManager(t.TempDir())
	n := &Network{Name: "sparenet", Driver: driver.Bridge, Subnet: netip.MustParsePrefix("10.78.0.0/24"),
		Gateway: netip.MustParseAddr("10.78.0.1"), Bridge: "sparenet"}
	if err := m.save(n); err != nil {
		t.Fatal(err)
	}
	inode := func(path string) uint64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	rec := func(id string, ports ...PortMapping) *endpointRecord {
		return &endpointRecord{Endpoint: Endpoint{ID: id, Network: n.Name, HostVeth: HostVethName(id), IfName: "eth0",
			IP: netip.MustParseAddr("10.78.0.2"), Subnet: n.Subnet, Gateway: n.Gateway, Ports: ports}, Process: &process{Pid: 1, Start: 2}}
	}
	// Removing what is not there makes nothing, not even the spares'
	// directory.
	if err := m.removeEndpoint(n.Name, "none"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(m.spare("endpoint"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spares' directory made: %v", err)
	}
	// The first is created; removing it makes it the spare.
	if err := m.saveEndpoint(rec("long-container-id", pm(8080, 80, "tcp"), pm(5353, 53, "udp"))); err != nil {
		t.Fatal(err)
	}
	ino := inode(m.endpointPath(n.Name, "long-container-id"))
	if err := m.removeEndpoint(n.Name, "long-container-id"); err != nil {
		t.Fatal(err)
	}
	if inode(m.spare("endpoint")) != ino {
		t.Fatal("the spare is not the removed file")
	}
	for _, id := range []string{"c1", "a-longer-container-id-than-before"} {
		want := rec(id)
		if err := m.saveEndpoint(want); err != nil {
			t.Fatal(err)
		}
		path := m.endpointPath(n.Name, id)
		if inode(path) != ino {
			t.Fatalf("%s was created, not renamed from the spare", id)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.MarshalIndent(want, "", "  ")
		if string(b) != string(wantJSON) {
			t.Fatalf("stored %s, want %s", b, wantJSON)
		}
		got, err := m.loadEndpointRecord(n.Name, id)
		if err != nil || got.ID != id || got.Process.Start != 2 || len(got.Ports) != 0 {
			t.Fatalf("loaded %+v, %v", got, err)
		}
		if ents, _ := os.ReadDir(m.endpointDir(n.Name)); len(ents) != 1 {
			t.Fatalf("endpoints directory: %v", ents)
		}
		if _, err := os.Stat(m.spare("endpoint")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("spare still there: %v", err)
		}
		if err := m.removeEndpoint(n.Name, id); err != nil {
			t.Fatal(err)
		}
	}
	// Two removed: one spare, the other file deleted; removing again is
	// success.
	for _, id := range []string{"d1", "d2"} {
		if err := m.saveEndpoint(rec(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"d1", "d2", "d2"} {
		if err := m.removeEndpoint(n.Name, id); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(m.endpointDir(n.Name)); len(ents) != 0 {
		t.Fatalf("endpoints left: %v", ents)
	}
	if _, err := os.Stat(m.spare("endpoint")); err != nil {
		t.Fatal(err)
	}
	if eps, err := m.Endpoints(n.Name); err != nil || len(eps) != 0 {
		t.Fatalf("Endpoints = %v, %v", eps, err)
	}
}

// marshalRecord writes what json.MarshalIndent does, byte for byte.
func TestMarshalRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "1234567890", "fockker0", "veth123", "eth0", "a\"b", `a\b`, "<&>", "é", "\u2028", "\x00\x1f", "\xff", "tab\t"}
	addrs := []netip.Addr{{}, netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("10.255.255.254"), netip.MustParseAddr("fd00::1")}
	prefixes := []netip.Prefix{{}, netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for i := range 3000 {
		rec := &endpointRecord{Endpoint: Endpoint{
			ID: pick(strs), Network: pick(strs), HostVeth: pick(strs), IfName: pick(strs),
			IP: addrs[r.IntN(len(addrs))], Subnet: prefixes[r.IntN(len(prefixes))], Gateway: addrs[r.IntN(len(addrs))],
		}}
		switch i % 3 {
		case 1:
			rec.Ports = []PortMapping{}
		case 2:
			for range 1 + r.IntN(3) {
				rec.Ports = append(rec.Ports, PortMapping{HostPort: uint16(r.Uint32()), ContainerPort: uint16(r.Uint32()), Proto: pick([]string{"tcp", "udp", "", "<x>"})})
			}
		}
		if r.IntN(2) == 0 {
			rec.Process = &process{Pid: r.IntN(1 << 22), Start: r.Uint64()}
		}
		want, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalRecord(rec); string(got) != string(want) {
			t.Fatalf("marshalRecord(%+v) =\n%s\nwant\n%s", rec, got, want)
		}
	}
}
