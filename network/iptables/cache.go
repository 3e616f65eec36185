package iptables

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// cacheVersion changes whenever the cache's meaning does.
const cacheVersion = 1

// cacheKey says which ruleset a cached ruleSet is: the boot, the network
// namespace (its cookie is never reused within a boot), the commands and
// the nf_tables generation, which moves with every committed change to any
// nf_tables table of the namespace. Another boot, namespace, backend or
// generation is a miss.
type cacheKey struct {
	BootID      string `json:"boot_id"`
	NetnsCookie uint64 `json:"netns_cookie"`
	Save        string `json:"save"`
	Restore     string `json:"restore"`
	Generation  uint32 `json:"generation"`
}

type cacheFile struct {
	Version int      `json:"version"`
	Key     cacheKey `json:"key"`
	Rules   *ruleSet `json:"rules"`
}

// currentKey returns the key of the ruleset as it is now.
func currentKey(c *commands) (*cacheKey, error) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
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

// readCache returns the cached ruleSet if it is the one of key, or nil.
// A missing, unreadable or foreign cache is a miss.
func (t *Tables) readCache(key *cacheKey) *ruleSet {
	b, err := os.ReadFile(t.cacheFile)
	if err != nil {
		return nil
	}
	var f cacheFile
	if json.Unmarshal(b, &f) != nil || f.Version != cacheVersion || f.Key != *key || f.Rules == nil {
		return nil
	}
	for _, tb := range f.Rules.Tables {
		if tb == nil {
			return nil
		}
	}
	return f.Rules
}

// writeCache replaces the cache with rs, the ruleset of key. The file is
// renamed into place but not synced: a cache lost or torn by a crash is a
// miss, and after a reboot the boot ID differs anyway.
func (t *Tables) writeCache(key *cacheKey, rs *ruleSet) (retErr error) {
	b, err := json.Marshal(cacheFile{Version: cacheVersion, Key: *key, Rules: rs})
	if err != nil {
		return fmt.Errorf("iptables cache: %w", err)
	}
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
