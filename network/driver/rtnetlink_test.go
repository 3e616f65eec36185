package driver

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A link message as the kernel lays it out: attributes are found, nested
// ones too, and those we do not know are skipped.
func TestParseLink(t *testing.T) {
	msg := ifinfomsg(7, unix.IFF_UP|unix.IFF_BROADCAST, 0)
	msg = attr(msg, unix.IFLA_IFNAME, cstr("fockker0"))
	msg = attr(msg, unix.IFLA_TXQLEN, u32(1000)) // not read
	msg = attr(msg, unix.IFLA_MTU, u32(1450))
	info := attr(nil, unix.IFLA_INFO_KIND, []byte("bridge"))
	info = attr(info, unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, attr(nil, 1, u32(0)))
	msg = attr(msg, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	l, err := parseLink(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := link{Index: 7, Name: "fockker0", Kind: "bridge", Flags: unix.IFF_UP | unix.IFF_BROADCAST, MTU: 1450, NetNsID: -1}
	if l != want {
		t.Fatalf("parsed %+v, want %+v", l, want)
	}

	msg = attr(ifinfomsg(3, 0, 0), unix.IFLA_LINK_NETNSID, u32(0xffffffff))
	if l, err := parseLink(msg); err != nil || l.NetNsID != 0xffffffff || l.kind() != "device" {
		t.Fatalf("parsed %+v, %v", l, err)
	}

	// Truncated input: what fits is read, nothing is read past the end.
	full := attr(ifinfomsg(9, 0, 0), unix.IFLA_IFNAME, cstr("eth0"))
	for n := unix.SizeofIfInfomsg; n < len(full); n++ {
		if _, err := parseLink(full[:n]); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	if _, err := parseLink(full[:unix.SizeofIfInfomsg-1]); err == nil {
		t.Fatal("a message shorter than ifinfomsg parsed")
	}
}

// Interfaces looked up over our socket read as the netlink library reads
// them; a missing one is errLinkNotFound.
func TestNetlinkLinks(t *testing.T) {
	requireRoot(t)
	nl, rt := hostHandle(t), hostNetlink(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "rtbr0"
	attrs.MTU = 1400
	if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteBridge(rt, "rtbr0") })
	lib, err := nl.LinkByName("rtbr0")
	if err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() (link, error){
		func() (link, error) { return rt.linkByName("rtbr0") },
		func() (link, error) { return rt.linkByIndex(lib.Attrs().Index) },
	} {
		l, err := get()
		if err != nil {
			t.Fatal(err)
		}
		want := link{Index: lib.Attrs().Index, Name: "rtbr0", Kind: "bridge", Flags: lib.Attrs().RawFlags, MTU: 1400, NetNsID: -1}
		if l != want {
			t.Fatalf("read %+v, want %+v", l, want)
		}
	}
	if err := rt.setUp(lib.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	if l, err := rt.linkByName("rtbr0"); err != nil || l.Flags&unix.IFF_UP == 0 {
		t.Fatalf("after setUp: %+v, %v", l, err)
	}

	if _, err := rt.linkByName("rtnone0"); !errors.Is(err, errLinkNotFound) {
		t.Fatalf("missing interface: %v", err)
	}
	if _, err := rt.linkByIndex(1 << 30); !errors.Is(err, errLinkNotFound) {
		t.Fatalf("missing index: %v", err)
	}
	if _, err := rt.linkByName(strings.Repeat("x", MaxIfNameLen+1)); err == nil || errors.Is(err, errLinkNotFound) {
		t.Fatalf("overlong name: %v", err)
	}
	if ok, err := LinkExists(rt, "rtbr0"); !ok || err != nil {
		t.Fatalf("LinkExists(rtbr0) = %v, %v", ok, err)
	}

	// A reply longer than the buffer is asked for again, whole.
	rt.buf = make([]byte, 64)
	if l, err := rt.linkByName("rtbr0"); err != nil || l.Name != "rtbr0" || len(rt.buf) <= 64 {
		t.Fatalf("with a small buffer: %+v, %v (buffer %d)", l, err, len(rt.buf))
	}

	// An error reply is the request's errno: the bridge cannot be deleted
	// twice, but deleteLink takes ENODEV for success.
	if err := rt.deleteLink(lib.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	if err := rt.deleteLink(lib.Attrs().Index); err != nil {
		t.Fatalf("deleting a deleted interface: %v", err)
	}
	if _, err := rt.request(unix.RTM_DELLINK, unix.NLM_F_ACK, ifinfomsg(int32(lib.Attrs().Index), 0, 0), 0); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("RTM_DELLINK of a missing interface: %v", err)
	}
	mustBeGone(t, nl, "rtbr0")
}

// The bridge's address is found by the ioctls when it is its primary one,
// and not otherwise; ensureAddr then looks at all of them, and adds it only
// once.
func TestEnsureAddr(t *testing.T) {
	requireRoot(t)
	nl, rt := hostHandle(t), hostNetlink(t)
	br, err := createBridge(rt, "rtbr1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteBridge(rt, "rtbr1") })
	gw := netip.MustParsePrefix("10.77.0.1/24")
	if isPrimaryAddr("rtbr1", gw) {
		t.Fatal("primary address found on a bridge without one")
	}
	other := netip.MustParsePrefix("10.78.0.1/16")
	if err := ensureAddr(rt, br, other); err != nil {
		t.Fatal(err)
	}
	if !isPrimaryAddr("rtbr1", other) || isPrimaryAddr("rtbr1", netip.MustParsePrefix("10.78.0.1/24")) {
		t.Fatal("primary address not read back exactly")
	}
	// gw becomes a second address: not the primary one.
	for range 2 {
		if err := ensureAddr(rt, br, gw); err != nil {
			t.Fatal(err)
		}
	}
	if isPrimaryAddr("rtbr1", gw) {
		t.Fatal("second address read as the primary one")
	}
	addrs, err := nl.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: br.Index}}, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if strings.Join(got, ",") != "10.78.0.1/16,10.77.0.1/24" {
		t.Fatalf("addresses %v", got)
	}
}
