package driver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const isolatedEnv = "FOCKKER_DRIVER_TEST_NETNS"

// TestMain re-executes the test binary in a network namespace of its own
// when running as root, so the links below never reach the machine's.
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && os.Getenv(isolatedEnv) == "" {
		cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), isolatedEnv+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "re-exec in a new network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth pairs")
	}
	if os.Getenv(isolatedEnv) == "" {
		t.Fatal("not running in a network namespace of its own")
	}
}

// container starts a process in a network namespace of its own and
// returns it, killed when the test ends.
func container(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "--", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); err == nil && string(b) == "sleep\n" {
			return cmd
		}
		if i == 2000 {
			t.Fatal("sleep did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pair makes a veth pair: eth0 in the namespace of cmd, hostName here.
func pair(t *testing.T, cmd *exec.Cmd, hostName string) {
	t.Helper()
	cns, err := netns.GetFromPid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer cns.Close()
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	cnl, err := netlink.NewHandleAt(cns)
	if err != nil {
		t.Fatal(err)
	}
	defer cnl.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "eth0"
	if err := cnl.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: hostName, PeerNamespace: netlink.NsFd(host)}); err != nil {
		t.Fatal(err)
	}
}

func hostHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	nl, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return nl
}

func mustBeGone(t *testing.T, nl *netlink.Handle, name string) {
	t.Helper()
	if l, err := nl.LinkByName(name); !isNotFound(err) {
		t.Fatalf("%s still there: %v, %v", name, l, err)
	}
}

// A container that still runs: its peer is alive, and deleteVeth deletes
// the pair, both ends, even when wrongly told the container exited.
func TestDeleteVethLivePeer(t *testing.T) {
	requireRoot(t)
	nl := hostHandle(t)
	c := container(t)
	pair(t, c, "vethlive")
	l, err := nl.LinkByName("vethlive")
	if err != nil {
		t.Fatal(err)
	}
	if peerNamespaceDying(l) {
		t.Fatal("peer namespace of a running container reported dying")
	}
	if err := deleteVeth(nl, "vethlive", false); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, nl, "vethlive")
	if out, err := exec.Command("nsenter", "-t", fmt.Sprint(c.Process.Pid), "-n", "ip", "-o", "link").CombinedOutput(); err != nil || strings.Contains(string(out), "eth0") {
		t.Fatalf("container end: %v\n%s", err, out)
	}

	// Told "exited" while it runs: the kernel never deletes the pair, so
	// deleteVeth does, after its bound.
	pair(t, c, "vethlive")
	if err := deleteVeth(nl, "vethlive", true); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, nl, "vethlive")
}

// A container that exited: the pair goes with its namespace, and
// deleteVeth returns once it has gone, told or not.
func TestDeleteVethExited(t *testing.T) {
	requireRoot(t)
	nl := hostHandle(t)
	for _, exited := range []bool{true, false} {
		c := container(t)
		pair(t, c, "vethgone")
		c.Process.Kill()
		c.Wait()
		if err := deleteVeth(nl, "vethgone", exited); err != nil {
			t.Fatal(err)
		}
		mustBeGone(t, nl, "vethgone")
	}
	// Nothing to delete is success.
	if err := deleteVeth(nl, "vethgone", false); err != nil {
		t.Fatal(err)
	}
}

// An interface of that name that is not a veth (a bridge here) is left
// alone.
func TestDeleteVethNotAVeth(t *testing.T) {
	requireRoot(t)
	nl := hostHandle(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "vethdummy"
	if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := nl.LinkByName("vethdummy"); err == nil {
			nl.LinkDel(l)
		}
	})
	for _, exited := range []bool{false, true} {
		if err := deleteVeth(nl, "vethdummy", exited); !errors.Is(err, ErrLinkExists) {
			t.Fatalf("deleteVeth of a bridge = %v", err)
		}
	}
	if _, err := nl.LinkByName("vethdummy"); err != nil {
		t.Fatalf("bridge removed: %v", err)
	}
}
