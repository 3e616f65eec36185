package network

// Helpers for the privileged tests: the test binary re-executes itself in
// a network and mount namespace of its own, so nothing it does can reach
// the machine's namespace; each test then makes the namespaces it needs
// ("host", "uplink", "outside", containers) inside that one.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

const (
	isolatedEnv = "FOCKKER_NETTEST_ISOLATED"
	helperEnv   = "FOCKKER_NETTEST_HELPER"
)

// isolateScript runs in fresh network and mount namespaces: a private
// tmpfs on /run/netns keeps the namespaces made by "ip netns add" out of
// the machine's /run, even if the test dies.
const isolateScript = `mkdir -p /run/netns && mount -t tmpfs fockker-nettest /run/netns && exec "$0" "$@"`

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && os.Getenv(isolatedEnv) == "" && os.Getenv(helperEnv) == "" {
		cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", "--",
			"/bin/sh", "-c", isolateScript, os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), isolatedEnv+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "re-exec in an isolated network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges, veths and iptables rules")
	}
	if os.Getenv(isolatedEnv) == "" {
		t.Fatal("privileged test not running in its own network namespace")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netNS is a namespace made by "ip netns add" (path /run/netns/<name>) or
// owned by a process (path /proc/<pid>/ns/net).
type netNS struct {
	name string // for ip netns exec; "" for a process's namespace
	path string
	pid  int
}

// newNS makes a named namespace with lo up, deleted when the test ends.
func newNS(t *testing.T, role string) *netNS {
	t.Helper()
	sum := sha256.Sum256([]byte(t.Name()))
	name := role + "-" + hex.EncodeToString(sum[:3])
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	ns := &netNS{name: name, path: "/run/netns/" + name}
	ns.run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// cmd returns a command running args in the namespace.
func (ns *netNS) cmd(args ...string) *exec.Cmd {
	if ns.name != "" {
		return exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	}
	return exec.Command("nsenter", append([]string{"-t", fmt.Sprint(ns.pid), "-n", "--"}, args...)...)
}

func (ns *netNS) try(args ...string) (string, error) {
	out, err := ns.cmd(args...).CombinedOutput()
	return string(out), err
}

func (ns *netNS) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ns.try(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns.path, strings.Join(args, " "), err, out)
	}
	return out
}

// do runs fn on this goroutine's OS thread switched into the namespace.
// If switching back fails the thread stays locked, so Go discards it.
func (ns *netNS) do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(ns.path)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("open %s: %v", ns.path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter %s: %v", ns.path, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("return from %s: %v", ns.path, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// startContainer starts "sleep" in a fresh network namespace, the stand-in
// for a container's init, and waits until it runs there.
func startContainer(t *testing.T) *netNS {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "--", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	waitFor(t, "container process to exec sleep", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err == nil && string(b) == "sleep\n"
	})
	ns := &netNS{pid: pid, path: fmt.Sprintf("/proc/%d/ns/net", pid)}
	self, _ := os.Readlink("/proc/self/ns/net")
	if theirs, _ := os.Readlink(ns.path); theirs == self || theirs == "" {
		t.Fatalf("container %d is not in a namespace of its own (%q)", pid, theirs)
	}
	return ns
}

// waitFor polls cond until it holds, failing the test after a generous
// bound. It is a readiness wait, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// link joins two namespaces by a veth pair with the given addresses.
func link(t *testing.T, a *netNS, aName, aAddr string, b *netNS, bName, bAddr string) {
	t.Helper()
	a.run(t, "ip", "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.name)
	a.run(t, "ip", "addr", "add", aAddr, "dev", aName)
	a.run(t, "ip", "link", "set", aName, "up")
	b.run(t, "ip", "addr", "add", bAddr, "dev", bName)
	b.run(t, "ip", "link", "set", bName, "up")
}

// startEcho runs the echo helper (TestNetHelper) in ns, serving proto on
// port, and waits until it listens.
func startEcho(t *testing.T, ns *netNS, proto string, port int) {
	t.Helper()
	cmd := ns.cmd(os.Args[0], "-test.run=^TestNetHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, proto, port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			t.Fatalf("echo helper %s/%d in %s: %q", proto, port, ns.path, line)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("echo helper %s/%d in %s did not start", proto, port, ns.path)
	}
}

// TestNetHelper is not a test: started by startEcho with $FOCKKER_NETTEST_HELPER
// set to "tcp PORT" or "udp PORT", it answers every line or datagram with
// "echo <peer address>: <text>" until killed.
func TestNetHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for the network tests")
	}
	var proto string
	var port int
	if _, err := fmt.Sscanf(spec, "%s %d", &proto, &port); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	if proto == "udp" {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("ready")
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(from.String())
			pc.WriteTo([]byte(fmt.Sprintf("echo %s: %s", host, buf[:n])), from)
		}
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "echo %s: %s", host, line)
		}()
	}
}

// dialTimeout bounds connection attempts that are expected to fail by
// DROP; it is not a timing assertion.
const dialTimeout = 2 * time.Second

// tcpEcho sends msg from ns to addr and returns the echoed line.
func tcpEcho(t *testing.T, ns *netNS, addr, msg string) (reply string, err error) {
	t.Helper()
	ns.do(t, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp4", addr, dialTimeout)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err = fmt.Fprintf(c, "%s\n", msg); err != nil {
			return
		}
		reply, err = bufio.NewReader(c).ReadString('\n')
		reply = strings.TrimSuffix(reply, "\n")
	})
	return reply, err
}

// udpEcho sends msg from ns to addr and returns the echoed datagram,
// trying a few times since UDP may lose the first packet.
func udpEcho(t *testing.T, ns *netNS, addr, msg string) (reply string, err error) {
	t.Helper()
	ns.do(t, func() {
		var c net.Conn
		c, err = net.Dial("udp4", addr)
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 2048)
		for i := 0; i < 5; i++ {
			if _, err = c.Write([]byte(msg)); err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(dialTimeout))
			var n int
			n, err = c.Read(buf)
			if err == nil {
				reply = string(buf[:n])
				return
			}
		}
	})
	return reply, err
}

func mustEcho(t *testing.T, ns *netNS, proto, addr, wantPeer string) {
	t.Helper()
	msg := "hello container"
	var reply string
	var err error
	if proto == "udp" {
		reply, err = udpEcho(t, ns, addr, msg)
	} else {
		reply, err = tcpEcho(t, ns, addr, msg)
	}
	if err != nil {
		t.Fatalf("%s %s from %s: %v", proto, addr, ns.path, err)
	}
	want := fmt.Sprintf("echo %s: %s", wantPeer, msg)
	if wantPeer == "" {
		if !strings.HasSuffix(reply, ": "+msg) {
			t.Fatalf("%s %s from %s: reply %q", proto, addr, ns.path, reply)
		}
		return
	}
	if reply != want {
		t.Fatalf("%s %s from %s: reply %q, want %q", proto, addr, ns.path, reply, want)
	}
}

func mustNotReach(t *testing.T, ns *netNS, addr string) {
	t.Helper()
	if reply, err := tcpEcho(t, ns, addr, "should not arrive"); err == nil {
		t.Fatalf("tcp %s from %s got through: %q", addr, ns.path, reply)
	}
}

// ping sends one ICMP echo with busybox, if there is one.
func ping(t *testing.T, ns *netNS, addr string) error {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Logf("no busybox: ICMP to %s not checked", addr)
		return nil
	}
	out, err := ns.try(bb, "ping", "-c", "1", "-W", "2", addr)
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, ns.path, err, out)
	}
	return nil
}

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot captures what must not change: links, addresses and routes of
// ns, its filter and nat rules, and the files under root.
func snapshot(t *testing.T, ns *netNS, root string) string {
	t.Helper()
	var b strings.Builder
	// Interface names and masters only: carrier flags settle on their own.
	for _, line := range strings.Split(ns.run(t, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		b.WriteString(f[1])
		for i := range f {
			if f[i] == "master" && i+1 < len(f) {
				b.WriteString(" master " + f[i+1])
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(ns.run(t, "ip", "-4", "-o", "addr", "show"))
	// Routes without "linkdown": a bridge's carrier also settles on its own.
	b.WriteString(strings.ReplaceAll(ns.run(t, "ip", "-4", "route", "show", "table", "all"), " linkdown", ""))
	for _, table := range []string{"filter", "nat"} {
		b.WriteString(countersRE.ReplaceAllString(ns.run(t, "iptables", "-w", "-t", table, "-S"), ""))
	}
	var files []string
	// The allocator's lock and round-robin hint, the cache of what
	// iptables-save printed and the spare files may change; allocations,
	// endpoints and configs may not.
	filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		switch filepath.Base(path) {
		case "lock", "last_reserved_ip", iptablesCacheName:
			return nil
		case spareDirName:
			return filepath.SkipDir
		}
		if err == nil {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	b.WriteString(strings.Join(files, "\n"))
	return b.String()
}
