package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink talks to the kernel's routing subsystem in the network namespace
// of the thread that opened it. What every container needs (looking an
// interface up, making and deleting its veth pair) goes over a route
// netlink socket of its own, in one small request and reply each; the rest
// (making a bridge, addresses, dumps) goes through the netlink library,
// whose handle is opened on first use. Replies are read into one buffer
// with nothing decoded beyond what is asked for: the library's handle costs
// some hundred microseconds to open and to answer its first request, a
// good part of what a short-lived fockker process spends on its network.
//
// A Netlink is not safe for concurrent use. It must be used from threads
// in the namespace it was opened in.
type Netlink struct {
	fd  int
	seq uint32
	buf []byte
	lib *netlink.Handle
}

// Constants of <linux/rtnetlink.h> and <linux/veth.h> that package unix
// lacks.
const (
	rtextFilterSkipStats = 1 << 3 // RTEXT_FILTER_SKIP_STATS
	vethInfoPeer         = 1      // VETH_INFO_PEER
)

// rtBufSize is the size replies are read into first: a link without its
// statistics takes about 1 KiB. A longer reply is read again into a
// buffer of its size.
const rtBufSize = 8192

// OpenNetlink opens a route netlink socket in the calling thread's network
// namespace.
func OpenNetlink() (*Netlink, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", os.NewSyscallError("socket", err))
	}
	return &Netlink{fd: fd, buf: make([]byte, rtBufSize)}, nil
}

// Close closes the socket, and the library's handle if one was opened.
func (n *Netlink) Close() {
	if n.lib != nil {
		n.lib.Close()
		n.lib = nil
	}
	if n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

// Handle returns the netlink library's handle, opened in the calling
// thread's network namespace on first use.
func (n *Netlink) Handle() (*netlink.Handle, error) {
	if n.lib == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		n.lib = h
	}
	return n.lib, nil
}

// link is what fockker reads of an interface.
type link struct {
	Index int
	Name  string
	Kind  string // IFLA_INFO_KIND: "bridge", "veth", or "" for none
	Flags uint32 // IFF_*
	MTU   int
	// NetNsID is the ID, in this namespace, of the namespace of the
	// interface's peer (IFLA_LINK_NETNSID), or -1 if the peer is here or
	// it has none.
	NetNsID int64
}

// kind returns the kind of interface l is, as the netlink library names
// it: "device" for one without a kind.
func (l link) kind() string {
	if l.Kind == "" {
		return "device"
	}
	return l.Kind
}

// errLinkNotFound is what looking up a missing interface gives.
var errLinkNotFound = errors.New("no such interface")

// attr appends a netlink attribute to b.
func attr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func cstr(s string) []byte { return append([]byte(s), 0) }

// ifinfomsg returns a struct ifinfomsg.
func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// attrs calls fn with the type and data of each attribute in b until fn
// returns false.
func attrs(b []byte, fn func(typ uint16, data []byte) bool) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return
		}
		if !fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofRtAttr:l]) {
			return
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next >= len(b) {
			return
		}
		b = b[next:]
	}
}

// request sends a request of type typ with payload and flags (to which
// NLM_F_REQUEST is added) and returns the payload of the reply of type
// reply, or nil for an acknowledgement (reply 0). An error reply gives its
// errno. A reply too long for the buffer is asked for again, which only
// requests that change nothing (reply != 0) may be.
func (n *Netlink) request(typ, flags uint16, payload []byte, reply uint16) ([]byte, error) {
	n.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], n.seq)
	msg = append(msg, payload...)
	for {
		if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, os.NewSyscallError("sendto", err)
		}
		data, truncated, err := n.receive(n.seq, reply)
		if !truncated {
			return data, err
		}
		if reply == 0 {
			return nil, errors.New("netlink: acknowledgement truncated")
		}
	}
}

// receive reads messages until the answer to request seq: the payload of
// a message of type reply, an acknowledgement (nil) or an error. It
// reports a reply that did not fit the buffer, which it grows.
func (n *Netlink) receive(seq uint32, reply uint16) (data []byte, truncated bool, err error) {
	for {
		size, from, err := unix.Recvfrom(n.fd, n.buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, os.NewSyscallError("recvfrom", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		if size > len(n.buf) {
			n.buf = make([]byte, size)
			return nil, true, nil
		}
		for b := n.buf[:size]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return nil, false, errors.New("netlink: malformed reply")
			}
			mtype := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			data := b[unix.NLMSG_HDRLEN:l]
			b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
			switch {
			case mseq != seq:
				// The answer to an earlier request.
			case mtype == unix.NLMSG_ERROR:
				if len(data) < 4 {
					return nil, false, errors.New("netlink: short error message")
				}
				if e := int32(binary.NativeEndian.Uint32(data)); e != 0 {
					return nil, false, unix.Errno(-e)
				}
				if reply != 0 {
					return nil, false, errors.New("netlink: acknowledged without a reply")
				}
				return nil, false, nil
			case reply != 0 && mtype == reply:
				return data, false, nil
			}
		}
	}
}

// linkRequest asks for one interface: by index, or by name if index is 0.
// Statistics are left out of the reply.
func (n *Netlink) linkRequest(index int, name string) (link, error) {
	payload := ifinfomsg(int32(index), 0, 0)
	payload = attr(payload, unix.IFLA_EXT_MASK, u32(rtextFilterSkipStats))
	if index == 0 {
		payload = attr(payload, unix.IFLA_IFNAME, cstr(name))
	}
	data, err := n.request(unix.RTM_GETLINK, 0, payload, unix.RTM_NEWLINK)
	if errors.Is(err, unix.ENODEV) {
		return link{}, errLinkNotFound
	}
	if err != nil {
		return link{}, err
	}
	return parseLink(data)
}

// parseLink decodes what fockker needs of an RTM_NEWLINK message.
func parseLink(b []byte) (link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return link{}, errors.New("netlink: short link message")
	}
	l := link{
		Index:   int(int32(binary.NativeEndian.Uint32(b[4:]))),
		Flags:   binary.NativeEndian.Uint32(b[8:]),
		NetNsID: -1,
	}
	attrs(b[unix.SizeofIfInfomsg:], func(typ uint16, data []byte) bool {
		switch typ {
		case unix.IFLA_IFNAME:
			l.Name = cstring(data)
		case unix.IFLA_MTU:
			if len(data) >= 4 {
				l.MTU = int(binary.NativeEndian.Uint32(data))
			}
		case unix.IFLA_LINK_NETNSID:
			if len(data) >= 4 {
				l.NetNsID = int64(binary.NativeEndian.Uint32(data))
			}
		case unix.IFLA_LINKINFO:
			attrs(data, func(typ uint16, data []byte) bool {
				if typ == unix.IFLA_INFO_KIND {
					l.Kind = cstring(data)
					return false
				}
				return true
			})
		}
		return true
	})
	return l, nil
}

// cstring returns the string in b up to its first NUL.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// linkByName looks up the interface called name; a missing one gives
// errLinkNotFound.
func (n *Netlink) linkByName(name string) (link, error) {
	if name == "" || len(name) > MaxIfNameLen {
		return link{}, fmt.Errorf("invalid interface name %q", name)
	}
	l, err := n.linkRequest(0, name)
	if err != nil && !errors.Is(err, errLinkNotFound) {
		return link{}, fmt.Errorf("look up interface %s: %w", name, err)
	}
	return l, err
}

// linkByIndex looks up the interface with index index; a missing one
// gives errLinkNotFound.
func (n *Netlink) linkByIndex(index int) (link, error) {
	if index <= 0 {
		return link{}, fmt.Errorf("invalid interface index %d", index)
	}
	l, err := n.linkRequest(index, "")
	if err != nil && !errors.Is(err, errLinkNotFound) {
		return link{}, fmt.Errorf("look up interface %d: %w", index, err)
	}
	return l, err
}

// deleteLink deletes the interface with index index; a missing one is
// success.
func (n *Netlink) deleteLink(index int) error {
	_, err := n.request(unix.RTM_DELLINK, unix.NLM_F_ACK, ifinfomsg(int32(index), 0, 0), 0)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete interface %d: %w", index, err)
	}
	return nil
}

// nsidGone reports whether nsid, a namespace ID of this namespace, names
// no live network namespace any more: RTM_GETNSID answers ENOENT. Any other
// answer, or failure, counts as alive.
func (n *Netlink) nsidGone(nsid uint32) bool {
	payload := attr([]byte{unix.AF_UNSPEC, 0, 0, 0}, unix.NETNSA_NSID, u32(nsid)) // rtgenmsg, padded
	_, err := n.request(unix.RTM_GETNSID, 0, payload, unix.RTM_NEWNSID)
	return errors.Is(err, unix.ENOENT)
}

// setUp brings up the interface with index index.
func (n *Netlink) setUp(index int) error {
	_, err := n.request(unix.RTM_NEWLINK, unix.NLM_F_ACK, ifinfomsg(int32(index), unix.IFF_UP, unix.IFF_UP), 0)
	return err
}
