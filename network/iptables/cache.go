package iptables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/FishingRodd/fockker/internal/smallfile"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// cacheKey says which ruleset a cached ruleSet is: the boot, the network
// namespace (its cookie is never reused within a boot), the commands and
// the nf_tables generation, which moves with every committed change to any
// nf_tables table of the namespace. Another boot, namespace, backend or
// generation is a miss.
type cacheKey struct {
	BootID      string
	NetnsCookie uint64
	Save        string
	Restore     string
	Generation  uint32
}

// currentKey returns the key of the ruleset as it is now.
func currentKey(c *commands) (*cacheKey, error) {
	boot, err := smallfile.Read("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, err
	}
	gen, cookie, err := nftState()
	if err != nil {
		return nil, err
	}
	return &cacheKey{
		BootID:      strings.TrimSpace(string(boot)),
		NetnsCookie: cookie,
		Save:        c.saveReal,
		Restore:     c.restoreReal,
		Generation:  gen,
	}, nil
}

// The cache is a text file: a header line with the version, a line with
// the key, the backend, then the tables as iptables-save would print what
// the ruleSet holds (chains, then rules), and a last line marking its end.
// Words are written as they are, or quoted (strconv.Quote) if they hold
// anything but printable ASCII, are empty, or start with a quote.
//
//	# fockker iptables cache 2
//	key "<boot id>" <netns cookie> "<save>" "<restore>" <generation>
//	backend nf_tables
//	*nat
//	:POSTROUTING
//	:FOCKKER-POSTROUTING
//	-A POSTROUTING -m comment --comment fockker:jump -j FOCKKER-POSTROUTING
//	end
const (
	cacheHeader = "# fockker iptables cache 2\n"
	cacheEnd    = "end\n"
)

// cacheKeyLine returns the key line of the cache of key.
func cacheKeyLine(key *cacheKey) string {
	return "key " + strconv.Quote(key.BootID) + " " + strconv.FormatUint(key.NetnsCookie, 10) + " " +
		strconv.Quote(key.Save) + " " + strconv.Quote(key.Restore) + " " + strconv.FormatUint(uint64(key.Generation), 10) + "\n"
}

// needsQuote reports whether w must be quoted in the cache.
func needsQuote(w string) bool {
	if w == "" || w[0] == '"' {
		return true
	}
	for i := 0; i < len(w); i++ {
		if w[i] <= ' ' || w[i] >= 0x7f {
			return true
		}
	}
	return false
}

func appendWord(b []byte, w string) []byte {
	if needsQuote(w) {
		return strconv.AppendQuote(b, w)
	}
	return append(b, w...)
}

// encodeCache returns the cache of rs, the ruleset of key.
func encodeCache(key *cacheKey, rs *ruleSet) []byte {
	b := []byte(cacheHeader + cacheKeyLine(key) + "backend ")
	b = appendWord(b, rs.Backend)
	b = append(b, '\n')
	for _, name := range slices.Sorted(maps.Keys(rs.Tables)) {
		t := rs.Tables[name]
		b = appendWord(append(b, '*'), name)
		b = append(b, '\n')
		for _, c := range t.Chains {
			b = appendWord(append(b, ':'), c)
			b = append(b, '\n')
		}
		for _, c := range slices.Sorted(maps.Keys(t.Rules)) {
			for _, r := range t.Rules[c] {
				b = appendWord(append(b, "-A "...), c)
				for _, w := range r {
					b = appendWord(append(b, ' '), w)
				}
				b = append(b, '\n')
			}
		}
	}
	return append(b, cacheEnd...)
}

// decodeCache returns the ruleSet cached in b if it is the one of key, or
// nil: another key, or a cache that is malformed or does not end where it
// should, is a miss.
func decodeCache(b []byte, key *cacheKey) *ruleSet {
	s := string(b)
	head := cacheHeader + cacheKeyLine(key)
	if !strings.HasPrefix(s, head) || !strings.HasSuffix(s, "\n"+cacheEnd) {
		return nil
	}
	lines := strings.Split(s[len(head):len(s)-len(cacheEnd)], "\n")
	if len(lines) < 2 {
		return nil // no backend line
	}
	rs := newRuleSet()
	var cur *table
	for i, line := range lines[:len(lines)-1] { // the last is empty
		switch {
		case i == 0:
			w, ok := cacheWords(strings.TrimPrefix(line, "backend "))
			if !strings.HasPrefix(line, "backend ") || !ok || len(w) != 1 {
				return nil
			}
			rs.Backend = w[0]
		case line == "":
			return nil
		case line[0] == '*':
			w, ok := cacheWords(line[1:])
			if !ok || len(w) != 1 || rs.Tables[w[0]] != nil {
				return nil
			}
			cur = rs.table(w[0])
		case cur == nil:
			return nil
		case line[0] == ':':
			w, ok := cacheWords(line[1:])
			if !ok || len(w) != 1 {
				return nil
			}
			cur.Chains = append(cur.Chains, w[0])
		case strings.HasPrefix(line, "-A "):
			w, ok := cacheWords(line[3:])
			if !ok || len(w) < 1 {
				return nil
			}
			cur.Rules[w[0]] = append(cur.Rules[w[0]], w[1:])
		default:
			return nil
		}
	}
	return rs
}

// cacheWords splits a line of the cache into words, unquoting quoted ones.
func cacheWords(line string) ([]string, bool) {
	var words []string
	for line != "" {
		var w string
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, false
			}
			if w, err = strconv.Unquote(q); err != nil {
				return nil, false
			}
			line = line[len(q):]
		} else {
			i := strings.IndexByte(line, ' ')
			if i < 0 {
				i = len(line)
			}
			w, line = line[:i], line[i:]
		}
		words = append(words, w)
		if line != "" {
			if line[0] != ' ' || len(line) == 1 {
				return nil, false
			}
			line = line[1:]
		}
	}
	return words, true
}

// readCache returns the cached ruleSet if it is the one of key, or nil.
// A missing, unreadable or foreign cache is a miss.
func (t *Tables) readCache(key *cacheKey) *ruleSet {
	b, err := smallfile.Read(t.cacheFile)
	if err != nil {
		return nil
	}
	return decodeCache(b, key)
}

// writeCache replaces the cache with rs, the ruleset of key. The file is
// renamed into place but not synced: a cache lost or torn by a crash is a
// miss, and after a reboot the boot ID differs anyway.
func (t *Tables) writeCache(key *cacheKey, rs *ruleSet) (retErr error) {
	b := encodeCache(key, rs)
	f, err := os.CreateTemp(filepath.Dir(t.cacheFile), "."+filepath.Base(t.cacheFile)+".tmp*")
	if err != nil {
		return fmt.Errorf("iptables cache: %w", err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("iptables cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("iptables cache: %w", err)
	}
	if err := os.Rename(f.Name(), t.cacheFile); err != nil {
		return fmt.Errorf("iptables cache: %w", err)
	}
	return nil
}

// nftGeneration returns the nf_tables generation of the calling thread's
// network namespace.
func nftGeneration() (uint32, error) {
	gen, _, err := nftState()
	return gen, err
}

// nftState asks nf_tables for its generation (NFT_MSG_GETGEN) over a
// netfilter netlink socket of the calling thread's network namespace, and
// returns it with the namespace's cookie.
func nftState() (gen uint32, cookie uint64, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, 0, os.NewSyscallError("getsockopt SO_NETNS_COOKIE", err)
	}
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, 0, os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	const seq = 1
	// struct nlmsghdr, then struct nfgenmsg {family, version, res_id}.
	req := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], seq)
	req[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	req[unix.NLMSG_HDRLEN+1] = unix.NFNETLINK_V0
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, 0, os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return 0, 0, fmt.Errorf("nf_tables generation: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return 0, 0, errors.New("nf_tables generation: short error message")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return 0, 0, fmt.Errorf("nf_tables generation: %w", unix.Errno(-e))
				}
			case unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWGEN:
				if gen, ok := genAttr(m.Data); ok {
					return gen, cookie, nil
				}
				return 0, 0, errors.New("nf_tables generation: no NFTA_GEN_ID in the reply")
			}
		}
	}
}

// genAttr finds NFTA_GEN_ID (big endian) after the nfgenmsg header.
func genAttr(data []byte) (uint32, bool) {
	if len(data) < 4 {
		return 0, false
	}
	attrs := data[4:]
	for len(attrs) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		typ := binary.NativeEndian.Uint16(attrs[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofRtAttr || l > len(attrs) {
			return 0, false
		}
		if typ == unix.NFTA_GEN_ID && l >= unix.SizeofRtAttr+4 {
			return binary.BigEndian.Uint32(attrs[unix.SizeofRtAttr:]), true
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(attrs) {
			break
		}
		attrs = attrs[next:]
	}
	return 0, false
}
