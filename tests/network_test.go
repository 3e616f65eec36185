package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests drive networks only through the built binary, inside the test's own network
// namespace (f.netns); "outside" clients and uplinks are further namespaces made here and
// wired to it with veth pairs. Nothing touches the machine's own network.

// netNS is a network namespace made by a test, held by a sleeping process.
type netNS struct {
	pid  int
	path string
}

// newNetNS makes a network namespace with lo up; it goes away when the test ends.
func newNetNS(t *testing.T) netNS {
	t.Helper()
	holder := exec.Command("unshare", "--net", "--", "sleep", "1000000")
	if err := holder.Start(); err != nil {
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	ns := netNS{pid: holder.Process.Pid, path: fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)}
	waitNetns(t, ns.path)
	if out, err := ns.run("ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	return ns
}

func (n netNS) run(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=" + n.path, "--"}, args...)...).CombinedOutput()
	return string(out), err
}

// mustNetns runs a host tool in the test's namespace and fails the test if it fails.
func (f *fk) mustNetns(args ...string) string {
	f.t.Helper()
	out, err := f.inNetns(args...)
	if err != nil {
		f.t.Fatalf("%q in the test's namespace: %v: %s", args, err, out)
	}
	return out
}

// wire links the test's namespace to ns with a veth pair: hostIf with hostAddr on our side,
// peerIf with peerAddr (both CIDR) on theirs. The pair dies with either namespace.
func (f *fk) wire(ns netNS, hostIf, hostAddr, peerIf, peerAddr string) {
	f.t.Helper()
	f.mustNetns("ip", "link", "add", hostIf, "type", "veth", "peer", "name", peerIf, "netns", strconv.Itoa(ns.pid))
	f.mustNetns("ip", "addr", "add", hostAddr, "dev", hostIf)
	f.mustNetns("ip", "link", "set", hostIf, "up")
	for _, args := range [][]string{{"ip", "addr", "add", peerAddr, "dev", peerIf}, {"ip", "link", "set", peerIf, "up"}} {
		if out, err := ns.run(args...); err != nil {
			f.t.Fatalf("%q: %v: %s", args, err, out)
		}
	}
}

// inNS runs fn on an OS thread switched into the network namespace at path. Sockets made by
// fn stay in that namespace. A thread that cannot switch back is never reused.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err)) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ncIn connects with busybox nc from the namespace at path to addr:port, sends stdin and
// returns what came back.
func ncIn(path, stdin, addr string, port int) (string, error) {
	cmd := exec.Command("nsenter", "--net="+path, "--", "timeout", "10", "busybox", "nc", addr, strconv.Itoa(port))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return string(out), err
}

// waitAnswer connects until the service at addr:port answers want (the container may not be
// listening yet) and fails the test if it never does.
func waitAnswer(t *testing.T, path, addr string, port int, want string) {
	t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = ncIn(path, "", addr, port)
		if err == nil && out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:%d answered %q (%v), want %q", addr, port, out, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostname server: every connection to port 80 gets the container's hostname (its name).
var hostnameServer = []string{"busybox", "nc", "-ll", "-p", "80", "-e", "hostname"}

// netSnap is the network-visible state of an installation: links, IPv4 addresses, rules of
// both iptables backends, and every file under the state and image roots.
type netSnap struct {
	links, addrs, rules, legacy string
	state, image                map[string]string
}

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

func (f *fk) snapshot() netSnap {
	f.t.Helper()
	var links []string
	for _, l := range f.linkLines() {
		name := strings.Fields(l)[1]
		name, _, _ = strings.Cut(strings.TrimSuffix(name, ":"), "@")
		if _, m, ok := strings.Cut(l, " master "); ok {
			name += " master " + strings.Fields(m)[0]
		}
		links = append(links, name)
	}
	sort.Strings(links)
	var addrs []string
	for _, l := range strings.Split(strings.TrimSpace(f.mustNetns("ip", "-o", "-4", "addr")), "\n") {
		if fs := strings.Fields(l); len(fs) >= 4 {
			addrs = append(addrs, fs[1]+" "+fs[3])
		}
	}
	sort.Strings(addrs)
	return netSnap{
		links:  strings.Join(links, "\n"),
		addrs:  strings.Join(addrs, "\n"),
		rules:  f.iptablesSave("iptables-save"),
		legacy: f.iptablesSave("iptables-legacy-save"),
		state:  treeSnapshot(f.t, f.state),
		image:  treeSnapshot(f.t, f.image),
	}
}

// iptablesSave dumps the rules of the test's namespace without timestamps and counters.
func (f *fk) iptablesSave(tool string) string {
	f.t.Helper()
	var out []string
	for _, l := range strings.Split(f.mustNetns(tool), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, countersRE.ReplaceAllString(l, ""))
	}
	return strings.Join(out, "\n")
}

// assertUnchanged compares the installation's network-visible state with before.
func (f *fk) assertUnchanged(before netSnap, what string) {
	f.t.Helper()
	after := f.snapshot()
	if before.links != after.links {
		f.t.Errorf("%s: links changed:\nbefore:\n%s\nafter:\n%s", what, before.links, after.links)
	}
	if before.addrs != after.addrs {
		f.t.Errorf("%s: addresses changed:\nbefore:\n%s\nafter:\n%s", what, before.addrs, after.addrs)
	}
	if before.rules != after.rules {
		f.t.Errorf("%s: iptables changed:\nbefore:\n%s\nafter:\n%s", what, before.rules, after.rules)
	}
	if before.legacy != after.legacy {
		f.t.Errorf("%s: legacy iptables changed:\nbefore:\n%s\nafter:\n%s", what, before.legacy, after.legacy)
	}
	if d := diffSnapshots(before.state, after.state); len(d) > 0 {
		f.t.Errorf("%s: state root changed: %v", what, d)
	}
	if d := diffSnapshots(before.image, after.image); len(d) > 0 {
		f.t.Errorf("%s: image root changed: %v", what, d)
	}
}

// links returns the names of the interfaces of the test's namespace.
func (f *fk) links() map[string]bool {
	f.t.Helper()
	m := map[string]bool{}
	for _, l := range f.linkLines() {
		name, _, _ := strings.Cut(strings.TrimSuffix(strings.Fields(l)[1], ":"), "@")
		m[name] = true
	}
	return m
}

// linkLines is `ip -o link` of the test's namespace once the kernel has finished with the
// veths of removed containers. rm leaves a veth whose container's network namespace is
// dying to the kernel, which deletes it a few milliseconds later: a veth named after no
// recorded container gets up to 5 s to go before it counts (and fails the test as residue).
func (f *fk) linkLines() []string {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := strings.Split(strings.TrimSpace(f.mustNetns("ip", "-o", "link")), "\n")
		ids := f.recordIDs()
		going := false
		for _, l := range lines {
			name, _, _ := strings.Cut(strings.TrimSuffix(strings.Fields(l)[1], ":"), "@")
			if !strings.HasPrefix(name, "veth") {
				continue
			}
			owned := false
			for _, id := range ids {
				if hostVeth(id) == name {
					owned = true
				}
			}
			going = going || !owned
		}
		if !going || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordIDs are the IDs of every record of this installation, read from the state root.
func (f *fk) recordIDs() []string {
	var ids []string
	files, _ := filepath.Glob(filepath.Join(f.state, "*", "config.json"))
	for _, file := range files {
		var rec struct {
			ID string `json:"id"`
		}
		if b, err := os.ReadFile(file); err == nil && json.Unmarshal(b, &rec) == nil && rec.ID != "" {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

// hostVeth is the host end of a container's veth pair as the issue names it: from its ID.
func hostVeth(id string) string {
	if len(id) > 11 {
		id = id[:11]
	}
	return "veth" + id
}

// ipamFile is where the allocation of ip on network net is recorded.
func (f *fk) ipamFile(net, ip string) string {
	return filepath.Join(f.state, "network", net, "ipam", ip)
}

// ipamAddrs lists the addresses allocated on a network, from its IPAM directory.
func (f *fk) ipamAddrs(net string) []string {
	f.t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.state, "network", net, "ipam"))
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertAttached checks that a container's network pieces all exist: its veth on the
// bridge, its address recorded, and (with ports) its DNAT rules.
func (f *fk) assertAttached(rec map[string]any, net string, ports bool) {
	f.t.Helper()
	id, ip := rec["id"].(string), rec["ip"].(string)
	if !strings.Contains(f.mustNetns("ip", "-o", "link", "show", "master", net), hostVeth(id)+"@") {
		f.t.Errorf("container %s: no %s on bridge %s", id, hostVeth(id), net)
	}
	if b, err := os.ReadFile(f.ipamFile(net, ip)); err != nil || !strings.Contains(string(b), id) {
		f.t.Errorf("container %s: IPAM file for %s: %q, %v", id, ip, b, err)
	}
	if got := strings.Contains(f.iptablesSave("iptables-save"), "fockker:ctr:"+id); got != ports {
		f.t.Errorf("container %s: rules with its comment present=%v, want %v", id, got, ports)
	}
}

// assertDetached checks that nothing of a container's network is left.
func (f *fk) assertDetached(id, ip, net string) {
	f.t.Helper()
	if f.links()[hostVeth(id)] {
		f.t.Errorf("container %s: %s left behind", id, hostVeth(id))
	}
	for _, tool := range []string{"iptables-save", "iptables-legacy-save"} {
		if s := f.iptablesSave(tool); strings.Contains(s, id) {
			f.t.Errorf("container %s: %s still has its rules:\n%s", id, tool, grepLines(s, id))
		}
	}
	if _, err := os.Stat(f.ipamFile(net, ip)); !os.IsNotExist(err) {
		f.t.Errorf("container %s: address %s still allocated (%v)", id, ip, err)
	}
	if _, err := os.Stat(filepath.Join(f.state, "network", net, "endpoints", id+".json")); !os.IsNotExist(err) {
		f.t.Errorf("container %s: endpoint still stored (%v)", id, err)
	}
}

// assertNetworkGone checks that nothing of a network is left: bridge, rules, state.
func (f *fk) assertNetworkGone(net string) {
	f.t.Helper()
	if f.links()[net] {
		f.t.Errorf("network %s: bridge left behind", net)
	}
	for _, tool := range []string{"iptables-save", "iptables-legacy-save"} {
		if s := f.iptablesSave(tool); strings.Contains(s, "fockker:net:"+net+`"`) {
			f.t.Errorf("network %s: %s still has its rules:\n%s", net, tool, grepLines(s, "fockker:net:"+net))
		}
	}
	if _, err := os.Stat(filepath.Join(f.state, "network", net)); !os.IsNotExist(err) {
		f.t.Errorf("network %s: state left behind (%v)", net, err)
	}
	if strings.Contains(f.ok("network", "ls"), "\n"+net+" ") {
		f.t.Errorf("network %s: still listed", net)
	}
}

// psIP returns the IP column of a container's row in `ps`.
func (f *fk) psIP(name string) string {
	f.t.Helper()
	lines := strings.Split(strings.TrimSpace(f.ok("ps")), "\n")
	if h := strings.Fields(lines[0]); h[len(h)-1] != "IP" {
		f.t.Fatalf("ps header %q: last column is not IP", lines[0])
	}
	for _, l := range lines[1:] {
		fs := strings.Fields(l)
		if len(fs) > 1 && fs[1] == name {
			return fs[len(fs)-1]
		}
	}
	f.t.Fatalf("ps has no row for %s:\n%s", name, strings.Join(lines, "\n"))
	return ""
}

// TestNetworkSeedScenario10 is the seed's scenario 10: a container listens with nc on port 80
// and text sent from the host to its IP arrives.
func TestNetworkSeedScenario10(t *testing.T) {
	f := newFK(t)
	name := uniq("nc")
	rec := f.detach(name, "busybox", "nc", "-lp", "80")
	ip := rec["ip"].(string)
	deadline := time.Now().Add(20 * time.Second)
	attempts := 0
	for {
		// Refused until nc listens; once connected nc -l prints what it got and exits.
		attempts++
		if _, err := ncIn(f.netns, "hello from the host\n", ip, 80); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not connect to %s:80", ip)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rec = f.waitStatus(name, "stopped", 20*time.Second)
	if got := f.ok("logs", name); got != "hello from the host\n" {
		t.Errorf("container received %q (connected at attempt %d; exit code %v, started %v, finished %v)",
			got, attempts, rec["exitCode"], rec["startedAt"], rec["finishedAt"])
	}
}

// TestNetworkPortMapping: -p 8080:80 reaches the container from an outside client, and from
// the host itself through its own address and 127.0.0.1.
func TestNetworkPortMapping(t *testing.T) {
	f := newFK(t)
	client := newNetNS(t)
	f.wire(client, "fkcl0", "10.99.0.1/24", "fkcl1", "10.99.0.2/24")
	name := uniq("web")
	rec := f.detach(name, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	f.assertAttached(rec, "fockker0", true)
	rule := fmt.Sprintf("--to-destination %s:80", rec["ip"])
	if !strings.Contains(grepLines(f.iptablesSave("iptables-save"), "fockker:ctr:"+rec["id"].(string)), rule) {
		t.Errorf("no DNAT rule %q for the container", rule)
	}
	for _, c := range []struct{ who, ns, addr string }{
		{"outside client", client.path, "10.99.0.1"},
		{"host, own address", f.netns, "10.99.0.1"},
		{"host, loopback", f.netns, "127.0.0.1"},
	} {
		t.Run(c.who, func(t *testing.T) { waitAnswer(t, c.ns, c.addr, 8080, name+"\n") })
	}
	// An unpublished port is not forwarded anywhere.
	if out, err := ncIn(client.path, "", "10.99.0.1", 8081); err == nil || out != "" {
		t.Errorf("unpublished port 8081 answered %q (%v)", out, err)
	}
}

// TestNetworkReachability: containers of one network reach each other; of two networks not.
func TestNetworkReachability(t *testing.T) {
	f := newFK(t)
	f.ok("network", "create", "--subnet", "10.30.0.0/24", "other")
	a, b, c := uniq("a"), uniq("b"), uniq("c")
	ipA := f.detach(a, "busybox", "sleep", "1000")["ip"].(string)
	ipB := f.detach(b, "busybox", "sleep", "1000")["ip"].(string)
	ipC := f.detach(c, "--net", "other", "busybox", "sleep", "1000")["ip"].(string)
	if !netip.MustParsePrefix("10.30.0.0/24").Contains(netip.MustParseAddr(ipC)) {
		t.Fatalf("container on other got %s", ipC)
	}
	ping := func(from, to string) result {
		return f.run("exec", from, "ping", "-c", "1", "-W", "3", to)
	}
	for _, p := range []struct{ from, to string }{{a, ipB}, {b, ipA}, {c, "10.30.0.1"}, {a, "192.168.0.1"}} {
		if r := ping(p.from, p.to); r.code != 0 {
			t.Errorf("%s cannot ping %s: %s", p.from, p.to, r)
		}
	}
	for _, p := range []struct{ from, to string }{{a, ipC}, {b, ipC}, {c, ipA}, {c, ipB}} {
		if r := ping(p.from, p.to); r.code == 0 {
			t.Errorf("%s reaches %s on another network: %s", p.from, p.to, r)
		}
	}
}

// TestNetworkMasquerade: a container reaches an "uplink" namespace, which sees the host's
// address as the source, not the container's.
func TestNetworkMasquerade(t *testing.T) {
	f := newFK(t)
	up := newNetNS(t)
	f.wire(up, "fkup0", "10.88.0.1/24", "fkup1", "10.88.0.2/24")
	var ln net.Listener
	if err := inNS(up.path, func() (err error) {
		ln, err = net.Listen("tcp4", "10.88.0.2:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type conn struct{ from, data string }
	got := make(chan conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- conn{data: err.Error()}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		got <- conn{c.RemoteAddr().String(), string(b)}
	}()
	name := uniq("out")
	f.detach(name, "busybox", "sh", "-c", "echo from the container | nc 10.88.0.2 9000; exec sleep 1000")
	select {
	case c := <-got:
		host, _, _ := net.SplitHostPort(c.from)
		if host != "10.88.0.1" {
			t.Errorf("uplink saw source %q, want the host's 10.88.0.1 (container has %s)", c.from, f.record(name)["ip"])
		}
		if c.data != "from the container\n" {
			t.Errorf("uplink received %q", c.data)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the uplink never got a connection; logs: %q", f.ok("logs", name))
	}
}

// TestNetworkIPShown: ps, inspect and the container itself agree on its address, and the
// host has its veth and allocation.
func TestNetworkIPShown(t *testing.T) {
	f := newFK(t)
	name := uniq("ip")
	rec := f.detach(name, "busybox", "sleep", "1000")
	ip, err := netip.ParseAddr(fmt.Sprint(rec["ip"]))
	if err != nil {
		t.Fatalf("inspect ip %v: %v", rec["ip"], err)
	}
	if !netip.MustParsePrefix("192.168.0.0/24").Contains(ip) || ip.As4()[3] == 0 || ip.As4()[3] == 1 || ip.As4()[3] == 255 {
		t.Errorf("address %s is not a host address of fockker0 other than the gateway", ip)
	}
	if got := f.psIP(name); got != ip.String() {
		t.Errorf("ps shows IP %q, inspect %s", got, ip)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(f.ok("ps", "--format", "json")), &recs); err != nil || len(recs) != 1 || recs[0]["ip"] != ip.String() {
		t.Errorf("ps --format json: %v, %v", recs, err)
	}
	if out := f.ok("exec", name, "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, " "+ip.String()+"/24 ") {
		t.Errorf("eth0 in the container: %q, want %s/24", out, ip)
	}
	if out := f.ok("exec", name, "ip", "route"); !strings.Contains(out, "default via 192.168.0.1 dev eth0") {
		t.Errorf("routes in the container:\n%s", out)
	}
	f.assertAttached(rec, "fockker0", false)
	if out := f.mustNetns("ip", "-o", "-4", "addr", "show", "fockker0"); !strings.Contains(out, " 192.168.0.1/24 ") {
		t.Errorf("bridge fockker0: %q", out)
	}
}

// TestNetworkTeardown: rm removes the container's veth, rules and address; network rm the
// bridge, rules and state; with the last network fockker's chains go too.
func TestNetworkTeardown(t *testing.T) {
	f := newFK(t)
	pristine := f.snapshot()
	f.ok("network", "create", "--subnet", "10.40.0.0/24", "tnet")
	name := uniq("td")
	rec := f.detach(name, "--net", "tnet", "-p", "8090:80", "busybox", "sleep", "1000")
	id, ip := rec["id"].(string), rec["ip"].(string)
	f.assertAttached(rec, "tnet", true)
	f.ok("rm", "-f", name)
	f.assertDetached(id, ip, "tnet")
	if len(f.ipamAddrs("tnet")) != 0 {
		t.Errorf("addresses left on tnet: %v", f.ipamAddrs("tnet"))
	}
	f.ok("network", "rm", "tnet")
	f.assertNetworkGone("tnet")
	after := f.snapshot()
	if strings.Contains(after.rules, "FOCKKER") || strings.Contains(after.legacy, "FOCKKER") {
		t.Errorf("fockker chains left after the last network:\n%s", after.rules)
	}
	if after.links != pristine.links || after.addrs != pristine.addrs {
		t.Errorf("links/addresses differ from before:\n%s\n%s\nvs\n%s\n%s", pristine.links, pristine.addrs, after.links, after.addrs)
	}
}

// TestNetworkCommands: network create/ls/rm, their messages in English and Chinese, and ls's
// columns and JSON.
func TestNetworkCommands(t *testing.T) {
	f := newFK(t)
	f.detach(uniq("dflt"), "busybox", "sleep", "1000") // brings fockker0 into being
	if out := f.ok("network", "create", "--subnet", "10.50.0.0/24", "n1"); out != "Network: n1, created\n" {
		t.Errorf("create printed %q", out)
	}
	if out := f.ok("network", "create", "--driver", "bridge", "n2"); out != "Network: n2, created\n" {
		t.Errorf("create printed %q", out)
	}
	zh := *f
	zh.env = append(append([]string{}, f.env...), "LANG=zh_CN.UTF-8")
	if out := zh.ok("network", "create", "--subnet", "10.51.0.0/24", "zh1"); out != "网络: zh1, 创建成功\n" {
		t.Errorf("create in Chinese printed %q", out)
	}
	if out := f.mustNetns("ip", "-o", "-4", "addr", "show", "n1"); !strings.Contains(out, " 10.50.0.1/24 ") {
		t.Errorf("bridge n1: %q", out)
	}

	lines := strings.Split(strings.TrimRight(f.ok("network", "ls"), "\n"), "\n")
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "Name IpRange Type" {
		t.Errorf("network ls header %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		fs := strings.Fields(l)
		rows[fs[0]] = fs
	}
	if len(rows) != 4 {
		t.Errorf("network ls lists %d networks, want 4:\n%s", len(rows), strings.Join(lines, "\n"))
	}
	for name, want := range map[string]string{"fockker0": "192.168.0.1/24", "n1": "10.50.0.1/24", "zh1": "10.51.0.1/24"} {
		if got := strings.Join(rows[name], " "); got != name+" "+want+" bridge" {
			t.Errorf("network ls row %q, want %q", got, name+" "+want+" bridge")
		}
	}
	// n2's subnet was picked: a private /24 apart from the others.
	auto, err := netip.ParsePrefix(rows["n2"][1])
	if err != nil || auto.Bits() != 24 || !auto.Addr().IsPrivate() || rows["n2"][2] != "bridge" {
		t.Errorf("n2: %v (%v)", rows["n2"], err)
	}
	for _, other := range []string{"192.168.0.0/24", "10.50.0.0/24", "10.51.0.0/24"} {
		if auto.Masked().Overlaps(netip.MustParsePrefix(other)) {
			t.Errorf("n2's picked subnet %s overlaps %s", auto, other)
		}
	}

	var nets []map[string]any
	if err := json.Unmarshal([]byte(f.ok("network", "ls", "--format", "json")), &nets); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, n := range nets {
		byName[fmt.Sprint(n["name"])] = n
	}
	if n := byName["fockker0"]; len(nets) != 4 || n == nil || n["subnet"] != "192.168.0.0/24" || n["gateway"] != "192.168.0.1" || n["driver"] != "bridge" {
		t.Errorf("network ls --format json: %v", nets)
	}

	if out := f.ok("network", "rm", "n1"); out != "Network: n1, removed\n" {
		t.Errorf("rm printed %q", out)
	}
	if out := zh.ok("network", "rm", "zh1"); out != "网络: zh1, 删除成功\n" {
		t.Errorf("rm in Chinese printed %q", out)
	}
	f.ok("network", "rm", "n2")
	for _, n := range []string{"n1", "n2", "zh1"} {
		f.assertNetworkGone(n)
	}
	if r := f.fails(125, "network", "rm", "n1"); !strings.Contains(r.stderr, "n1") {
		t.Errorf("removing a missing network: %s", r)
	}
}

// TestNetworkCreateErrors: every refused network create changes nothing.
func TestNetworkCreateErrors(t *testing.T) {
	f := newFK(t)
	f.detach(uniq("dflt"), "busybox", "sleep", "1000")
	f.ok("network", "create", "--subnet", "10.60.0.0/24", "taken")
	f.mustNetns("ip", "link", "add", "fkhost0", "type", "veth", "peer", "name", "fkhost1")
	f.mustNetns("ip", "addr", "add", "10.70.0.1/24", "dev", "fkhost0")
	before := f.snapshot()
	for _, c := range []struct {
		why  string
		args []string
	}{
		{"overlaps fockker0 (subset)", []string{"--subnet", "192.168.0.128/25", "x1"}},
		{"overlaps fockker0 (superset)", []string{"--subnet", "192.168.0.0/16", "x2"}},
		{"same subnet as another network", []string{"--subnet", "10.60.0.0/24", "x3"}},
		{"overlaps another network", []string{"--subnet", "10.60.0.64/26", "x3"}},
		{"overlaps a host address", []string{"--subnet", "10.70.0.0/16", "x4"}},
		{"prefix too long", []string{"--subnet", "10.0.0.0/33", "x5"}},
		{"not an address", []string{"--subnet", "300.1.1.0/24", "x5"}},
		{"not a CIDR", []string{"--subnet", "banana", "x5"}},
		{"no prefix length", []string{"--subnet", "10.0.0.0", "x5"}},
		{"host bits set", []string{"--subnet", "10.0.0.1/24", "x5"}},
		{"duplicate name", []string{"--subnet", "10.61.0.0/24", "taken"}},
		{"duplicate of the default", []string{"--subnet", "10.61.0.0/24", "fockker0"}},
		{"name of a host interface", []string{"--subnet", "10.61.0.0/24", "fkhost0"}},
		{"name longer than 15 bytes", []string{"--subnet", "10.62.0.0/24", "abcdefghijklmnop"}},
		{"name with a slash", []string{"--subnet", "10.62.0.0/24", "a/b"}},
		{"name ..", []string{"--subnet", "10.62.0.0/24", ".."}},
		{"driver other than bridge", []string{"--driver", "overlay", "--subnet", "10.63.0.0/24", "x6"}},
		{"no name", []string{"--subnet", "10.63.0.0/24"}},
		{"two names", []string{"--subnet", "10.63.0.0/24", "x7", "x8"}},
	} {
		t.Run(c.why, func(t *testing.T) {
			f := f.with(t)
			r := f.fails(125, append([]string{"network", "create"}, c.args...)...)
			if r.stdout != "" || r.stderr == "" {
				t.Errorf("want only an error message: %s", r)
			}
			f.assertUnchanged(before, c.why)
		})
	}
}

// TestNetworkPortConflicts: a host port already published or listened on, or -p without a
// network, is refused at run with 125, and nothing changes; the first owner keeps its port.
func TestNetworkPortConflicts(t *testing.T) {
	f := newFK(t)
	first := uniq("first")
	rec := f.detach(first, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	waitAnswer(t, f.netns, "127.0.0.1", 8080, first+"\n")
	// A host process listening on 7070 in the test's namespace.
	listener := exec.Command("nsenter", "--net="+f.netns, "--", "busybox", "nc", "-ll", "-p", "7070", "-e", "true")
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Process.Kill(); listener.Wait() })
	waitFor(t, "the host listener on 7070", 10*time.Second, func() bool {
		out, _ := f.inNetns("ss", "-Htln", "sport", "= :7070")
		return strings.Contains(out, "LISTEN")
	})
	before := f.snapshot()
	for _, c := range []struct {
		why  string
		args []string
	}{
		{"published by another container", []string{"-p", "8080:80"}},
		{"second of two published", []string{"-p", "9000:80", "-p", "8080:81"}},
		{"listened on by a host process", []string{"-p", "7070:80"}},
		{"--net none", []string{"--net", "none", "-p", "9001:80"}},
		{"--net host", []string{"--net", "host", "-p", "9001:80"}},
		{"no such network", []string{"--net", "nosuchnet", "-p", "9001:80"}},
		{"port given twice", []string{"-p", "9002:80", "-p", "9002:81"}},
		{"no container port", []string{"-p", "9003"}},
		{"port 0", []string{"-p", "0:80"}},
		{"port too big", []string{"-p", "70000:80"}},
		{"unknown protocol", []string{"-p", "9004:80/sctp"}},
	} {
		t.Run(c.why, func(t *testing.T) {
			f := f.with(t)
			name := uniq("second")
			args := append(append([]string{"run", "-d", "--name", name}, c.args...), "busybox", "sleep", "1000")
			r := f.fails(125, args...)
			if r.stdout != "" || r.stderr == "" {
				t.Errorf("want only an error message: %s", r)
			}
			f.assertUnchanged(before, c.why)
			if cg := cgroupsOf(name); len(cg) > 0 {
				t.Errorf("cgroups left: %v", cg)
			}
		})
	}
	// The first container is untouched: same process, still answering on its port.
	if now := f.record(first); now["status"] != "running" || now["pid"] != rec["pid"] || now["ip"] != rec["ip"] {
		t.Errorf("first container changed: %v", now)
	}
	waitAnswer(t, f.netns, "127.0.0.1", 8080, first+"\n")
	// The same port number with the other protocol is a different port.
	udp := f.detach(uniq("udp"), "-p", "8080:80/udp", "busybox", "sleep", "1000")
	f.assertAttached(udp, "fockker0", true)
}

// TestNetworkStopReleasesPort: a stopped container (by stop, or by exiting) frees its host
// ports at once but keeps its address until rm.
func TestNetworkStopReleasesPort(t *testing.T) {
	f := newFK(t)
	a := uniq("a")
	recA := f.detach(a, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	idA, ipA := recA["id"].(string), recA["ip"].(string)
	waitAnswer(t, f.netns, "127.0.0.1", 8080, a+"\n")
	f.ok("stop", "-t", "1", a)
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:"+idA) {
		t.Errorf("stopped container keeps its port rules:\n%s", grepLines(s, idA))
	}
	if _, err := os.Stat(f.ipamFile("fockker0", ipA)); err != nil {
		t.Errorf("stopped container lost its address before rm: %v", err)
	}
	if got := f.record(a)["ip"]; got != ipA {
		t.Errorf("inspect of the stopped container: ip %v, want %s", got, ipA)
	}

	b := uniq("b")
	recB := f.detach(b, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	if recB["ip"] == ipA {
		t.Errorf("b got a's address %s while a still holds it", ipA)
	}
	waitAnswer(t, f.netns, "127.0.0.1", 8080, b+"\n")

	// A container that exits by itself frees its port too (through its watcher).
	c := uniq("c")
	f.detach(c, "-p", "8081:80", "busybox", "true")
	f.waitStatus(c, "stopped", 20*time.Second)
	d := uniq("d")
	f.detach(d, "-p", "8081:80", "busybox", "sleep", "1000")

	f.ok("rm", a)
	f.assertDetached(idA, ipA, "fockker0")
	f.assertAttached(recB, "fockker0", true)
}

// TestNetworkRmInUse: network rm is refused while a container is attached, changing
// nothing; -f disconnects it and removes everything.
func TestNetworkRmInUse(t *testing.T) {
	f := newFK(t)
	f.ok("network", "create", "--subnet", "10.45.0.0/24", "busy")
	name := uniq("att")
	rec := f.detach(name, "--net", "busy", "-p", "8085:80", "busybox", "sleep", "1000")
	before := f.snapshot()
	r := f.fails(125, "network", "rm", "busy")
	if !strings.Contains(r.stderr, rec["id"].(string)) && !strings.Contains(r.stderr, name) {
		t.Errorf("the refusal does not name the container: %s", r)
	}
	f.assertUnchanged(before, "refused network rm")
	if r := f.run("exec", name, "ping", "-c", "1", "-W", "3", "10.45.0.1"); r.code != 0 {
		t.Errorf("the container lost its network: %s", r)
	}

	f.ok("network", "rm", "-f", "busy")
	f.assertDetached(rec["id"].(string), rec["ip"].(string), "busy")
	f.assertNetworkGone("busy")
	f.ok("rm", "-f", name)
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "FOCKKER") {
		t.Errorf("rules left:\n%s", s)
	}
}

// TestNetworkNoneAndHost: --net none has only lo; --net host sees the host's links; neither
// makes a bridge, a veth or an allocation.
func TestNetworkNoneAndHost(t *testing.T) {
	f := newFK(t)
	f.mustNetns("ip", "link", "add", "fkmark0", "type", "veth", "peer", "name", "fkmark1")
	before := f.snapshot()
	none := uniq("none")
	rec := f.detach(none, "--net", "none", "busybox", "sleep", "1000")
	out := f.ok("exec", none, "ip", "-o", "link")
	if ls := strings.Split(strings.TrimSpace(out), "\n"); len(ls) != 1 || !strings.Contains(ls[0], ": lo: ") || !strings.Contains(ls[0], "UP") {
		t.Errorf("--net none: links %q, want only lo, up", out)
	}
	if got := f.psIP(none); got != "-" {
		t.Errorf("ps IP of --net none: %q", got)
	}
	if ip, _ := rec["ip"].(string); ip != "" {
		t.Errorf("inspect ip of --net none: %q", ip)
	}

	out = f.ok("run", "--rm", "--net", "host", "busybox", "ip", "-o", "link")
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		n, _, _ := strings.Cut(strings.TrimSuffix(strings.Fields(l)[1], ":"), "@")
		names = append(names, n)
	}
	sort.Strings(names)
	var want []string
	for n := range f.links() {
		want = append(want, n)
	}
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("--net host sees links %v, the host has %v", names, want)
	}
	f.ok("rm", "-f", none)
	after := f.snapshot()
	if after.links != before.links || after.rules != before.rules || len(f.ipamAddrs("fockker0")) != 0 {
		t.Errorf("none/host networking changed the host:\n%s\n%s", after.links, after.rules)
	}
}

// TestNetworkParallelRuns: concurrent run -d on one network get distinct addresses, and all
// are released again. The issue asks for 100; 100 run well within the time budget here.
func TestNetworkParallelRuns(t *testing.T) {
	const n = 100
	f := newFK(t)
	f.ok("network", "create", "--subnet", "10.80.0.0/24", "par")
	prefix := uniq("par")
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := f.nsCommand("run", "-d", "--net", "par", "--name", fmt.Sprintf("%s-%d", prefix, i), "busybox", "sleep", "1000").CombinedOutput()
			if err != nil {
				errs[i] = fmt.Sprintf("%v: %s", err, out)
			}
		}(i)
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("run %d: %s", i, e)
		}
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(f.ok("ps", "--format", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	subnet := netip.MustParsePrefix("10.80.0.0/24")
	for _, r := range recs {
		ip, name := fmt.Sprint(r["ip"]), fmt.Sprint(r["name"])
		a, err := netip.ParseAddr(ip)
		if err != nil || !subnet.Contains(a) || a.As4()[3] == 0 || a.As4()[3] == 1 || a.As4()[3] == 255 {
			t.Errorf("%s: address %q", name, ip)
		}
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both have %s", name, other, ip)
		}
		seen[ip] = name
	}
	if len(seen) != n {
		t.Errorf("%d distinct addresses for %d containers", len(seen), n)
	}
	if got := f.ipamAddrs("par"); len(got) != n {
		t.Errorf("IPAM holds %d addresses, want %d", len(got), n)
	}
	// Remove them concurrently too, ten at a time.
	var mu sync.Mutex
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			args := []string{"rm", "-f"}
			for i := w; i < n; i += 10 {
				args = append(args, fmt.Sprintf("%s-%d", prefix, i))
			}
			if out, err := f.nsCommand(args...).CombinedOutput(); err != nil {
				mu.Lock()
				t.Errorf("rm: %v: %s", err, out)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if got := f.ipamAddrs("par"); len(got) != 0 {
		t.Errorf("addresses left after rm: %v", got)
	}
	for l := range f.links() {
		if strings.HasPrefix(l, "veth") {
			t.Errorf("veth left: %s", l)
		}
	}
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:") {
		t.Errorf("container rules left:\n%s", grepLines(s, "fockker:ctr:"))
	}
}

// TestNetworkDefaultBridgeRecreated: fockker0 deleted by hand is rebuilt by the next run,
// with its address and its rules, and no rule twice.
func TestNetworkDefaultBridgeRecreated(t *testing.T) {
	f := newFK(t)
	a := uniq("a")
	f.detach(a, "busybox", "sleep", "1000")
	rules := grepLines(f.iptablesSave("iptables-save"), "fockker:net:fockker0")
	f.ok("rm", "-f", a)
	f.mustNetns("ip", "link", "del", "fockker0")
	if f.links()["fockker0"] {
		t.Fatal("fockker0 still there")
	}
	b := uniq("b")
	rec := f.detach(b, "busybox", "sleep", "1000")
	if out := f.mustNetns("ip", "-o", "-4", "addr", "show", "fockker0"); !strings.Contains(out, " 192.168.0.1/24 ") {
		t.Fatalf("re-created fockker0: %q", out)
	}
	f.assertAttached(rec, "fockker0", false)
	if got := grepLines(f.iptablesSave("iptables-save"), "fockker:net:fockker0"); got != rules {
		t.Errorf("fockker0's rules differ after re-creation:\nbefore:\n%s\nafter:\n%s", rules, got)
	}
	if r := f.run("exec", b, "ping", "-c", "1", "-W", "3", "192.168.0.1"); r.code != 0 {
		t.Errorf("the container cannot reach the re-created gateway: %s", r)
	}
}

// TestNetworkRollback: a run that fails after its network was set up (the command cannot be
// started) releases its address, veth and rules; so does --rm when the container exits.
func TestNetworkRollback(t *testing.T) {
	f := newFK(t)
	f.detach(uniq("keep"), "busybox", "sleep", "1000") // fockker0 and its state exist
	before := f.snapshot()
	// The allocator's round-robin cursor moves with every allocation, released or not.
	cursor := filepath.Join("network", "fockker0", "ipam", "last_reserved_ip")
	for _, c := range []struct {
		why  string
		code int
		args []string
	}{
		{"detached, command not found", 127, []string{"run", "-d", "-p", "8090:80", "busybox", "no-such-command"}},
		{"foreground, not executable", 126, []string{"run", "-p", "8090:80", "busybox", "/etc/passwd"}},
		{"foreground --rm, exits", 0, []string{"run", "--rm", "-p", "8090:80", "busybox", "true"}},
		{"detached --rm, exits", 0, []string{"run", "-d", "--rm", "-p", "8090:80", "busybox", "true"}},
	} {
		t.Run(c.why, func(t *testing.T) {
			f := f.with(t)
			r := f.run(c.args...)
			if r.code != c.code {
				t.Fatalf("want exit %d: %s", c.code, r)
			}
			waitFor(t, "the container to be gone", 20*time.Second, func() bool {
				return len(strings.Fields(f.ok("ps", "-q"))) == 1
			})
			after := f.snapshot()
			for _, snap := range []netSnap{before, after} {
				delete(snap.state, cursor)
				// A cache of the rules (keyed by the nf_tables generation, which any change
				// moves) is derived data, and the spares (a released address file, blank, and
				// a removed endpoint file, kept to be renamed into place by the next connect)
				// hold nothing: neither is something the run left behind.
				for k := range snap.state {
					if k == "network/.iptables-cache" || k == "network/.spare-cache" || k == "network/.spare-cache/address" || k == "network/.spare-cache/endpoint" {
						delete(snap.state, k)
					}
				}
			}
			if after.links != before.links || after.addrs != before.addrs || after.rules != before.rules {
				t.Errorf("network changed:\n%s\n%s\nvs\n%s\n%s", before.links, before.rules, after.links, after.rules)
			}
			if d := diffSnapshots(before.state, after.state); len(d) > 0 {
				t.Errorf("state changed: %v", d)
			}
		})
	}
}

// TestNetworkDeadContainerFreesPort: a container whose init died without its watcher
// recording it (the watcher was SIGKILLed, taking init along) does not keep its host port
// published: ps says it is stopped, so a new container may map the port; its address stays
// until rm.
func TestNetworkDeadContainerFreesPort(t *testing.T) {
	f := newFK(t)
	a := uniq("a")
	rec := f.detach(a, "-p", "8080:80", "busybox", "sleep", "1000")
	if err := syscall.Kill(num(t, rec, "watcherPid"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "init to die with its watcher", 10*time.Second, func() bool { return procGone(num(t, rec, "pid")) })
	f.waitStatus(a, "stopped", 10*time.Second)
	b := uniq("b")
	recB := f.detach(b, append([]string{"-p", "8080:80"}, hostnameServer...)...)
	waitAnswer(t, f.netns, "127.0.0.1", 8080, b+"\n")
	if s := f.iptablesSave("iptables-save"); strings.Contains(s, "fockker:ctr:"+rec["id"].(string)) {
		t.Errorf("the dead container's rules are still there:\n%s", grepLines(s, rec["id"].(string)))
	}
	if _, err := os.Stat(f.ipamFile("fockker0", rec["ip"].(string))); err != nil {
		t.Errorf("the dead container lost its address before rm: %v", err)
	}
	f.ok("rm", a)
	f.assertDetached(rec["id"].(string), rec["ip"].(string), "fockker0")
	f.assertAttached(recB, "fockker0", true)
}
