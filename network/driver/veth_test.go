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
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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

// isNotFound reports whether err is the netlink library's "link not
// found".
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// hostNetlink opens a Netlink in the test's namespace, closed when the
// test ends.
func hostNetlink(t *testing.T) *Netlink {
	t.Helper()
	n, err := OpenNetlink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
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
	nl, rt := hostHandle(t), hostNetlink(t)
	c := container(t)
	pair(t, c, "vethlive")
	l, err := rt.linkByName("vethlive")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "veth" || l.NetNsID < 0 {
		t.Fatalf("vethlive read as %+v", l)
	}
	if peerNamespaceDying(rt, l) {
		t.Fatal("peer namespace of a running container reported dying")
	}
	if err := deleteVeth(rt, "vethlive", false); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, nl, "vethlive")
	if out, err := exec.Command("nsenter", "-t", fmt.Sprint(c.Process.Pid), "-n", "ip", "-o", "link").CombinedOutput(); err != nil || strings.Contains(string(out), "eth0") {
		t.Fatalf("container end: %v\n%s", err, out)
	}

	// Told "exited" while it runs: the kernel never deletes the pair, so
	// deleteVeth does, after its bound.
	pair(t, c, "vethlive")
	if err := deleteVeth(rt, "vethlive", true); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, nl, "vethlive")
}

// A container that exited: the pair goes with its namespace. deleteVeth
// returns once the namespace is dying (the kernel then deletes the pair,
// which it must do within moments) or the pair is gone, told or not.
func TestDeleteVethExited(t *testing.T) {
	requireRoot(t)
	nl, rt := hostHandle(t), hostNetlink(t)
	for _, exited := range []bool{true, false} {
		c := container(t)
		pair(t, c, "vethgone")
		l, err := rt.linkByName("vethgone")
		if err != nil {
			t.Fatal(err)
		}
		c.Process.Kill()
		c.Wait()
		if err := deleteVeth(rt, "vethgone", exited); err != nil {
			t.Fatal(err)
		}
		if _, err := nl.LinkByIndex(l.Index); !isNotFound(err) && !peerNamespaceDying(rt, l) {
			t.Fatalf("exited=%v: deleteVeth returned with the pair there and its namespace alive", exited)
		}
		if gone, err := waitLinkGone(nl, l.Index, 5*time.Second); err != nil || !gone {
			t.Fatalf("exited=%v: the kernel did not delete the pair: %v", exited, err)
		}
	}
	// Nothing to delete is success.
	if err := deleteVeth(rt, "vethgone", false); err != nil {
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
	rt := hostNetlink(t)
	for _, exited := range []bool{false, true} {
		if err := deleteVeth(rt, "vethdummy", exited); !errors.Is(err, ErrLinkExists) {
			t.Fatalf("deleteVeth of a bridge = %v", err)
		}
	}
	if _, err := nl.LinkByName("vethdummy"); err != nil {
		t.Fatalf("bridge removed: %v", err)
	}
}

// waitLinkGone waits until the interface with index index is deleted, for
// at most timeout, and reports whether it was. It listens to link events
// before it looks, so a deletion cannot slip between the two.
func waitLinkGone(h *netlink.Handle, index int, timeout time.Duration) (bool, error) {
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK)
	if err != nil {
		return false, fmt.Errorf("subscribe to link events: %w", err)
	}
	defer sock.Close()
	if _, err := h.LinkByIndex(index); isNotFound(err) {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("look up interface %d: %w", index, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := sock.SetReceiveTimeout(&tv); err != nil {
			return false, err
		}
		msgs, _, err := sock.Receive()
		if errors.Is(err, unix.EAGAIN) {
			return false, nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Events were lost: look instead.
			if _, err := h.LinkByIndex(index); isNotFound(err) {
				return true, nil
			}
			continue
		}
		if err != nil {
			return false, fmt.Errorf("receive link events: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_DELLINK || len(m.Data) < unix.SizeofIfInfomsg {
				continue
			}
			if int(nl.DeserializeIfInfomsg(m.Data).Index) == index {
				return true, nil
			}
		}
	}
}
