package security

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// allCaps is the pseudo-capability of --cap-add ALL and --cap-drop ALL.
const allCaps = "ALL"

// DefaultCapabilities is docker's default capability set, in docker's order.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// capName is the canonical name of c: "CAP_" and its name in capitals (capability's names
// are ASCII), made in one allocation.
func capName(c capability.Cap) string {
	s := c.String()
	var b strings.Builder
	b.Grow(len("CAP_") + len(s))
	b.WriteString("CAP_")
	for i := range len(s) {
		b.WriteByte(upperASCII(s[i]))
	}
	return b.String()
}

// capByName returns the capability called name (canonical form). It compares without
// making every capability's name: CapMask runs it for each capability of every container.
func capByName(name string) (capability.Cap, bool) {
	rest, ok := strings.CutPrefix(name, "CAP_")
	if !ok {
		return 0, false
	}
	for _, c := range capability.ListKnown() {
		if s := c.String(); len(s) == len(rest) && isUpperOf(rest, s) {
			return c, true
		}
	}
	return 0, false
}

func upperASCII(b byte) byte {
	if 'a' <= b && b <= 'z' {
		return b - ('a' - 'A')
	}
	return b
}

// isUpperOf reports whether s is lower in ASCII capitals; the two are as long.
func isUpperOf(s, lower string) bool {
	for i := range len(s) {
		if s[i] != upperASCII(lower[i]) {
			return false
		}
	}
	return true
}

// NormalizeCap returns the canonical form of a capability name as docker accepts it: any
// case, with or without the CAP_ prefix ("net_admin", "CAP_NET_ADMIN"), or ALL.
func NormalizeCap(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == allCaps {
		return n, nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if _, ok := capByName(n); !ok {
		return "", fmt.Errorf("%w: unknown capability %q", ErrInvalidCapability, name)
	}
	return n, nil
}

// NormalizeCaps normalizes every name, dropping repeats.
func NormalizeCaps(names []string) ([]string, error) {
	var out []string
	for _, name := range names {
		n, err := NormalizeCap(name)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// SupportedCapabilities lists every capability the running kernel has, canonical names.
func SupportedCapabilities() ([]string, error) {
	caps, err := capability.ListSupported()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = capName(c)
	}
	return out, nil
}

// tweakCapabilities is docker's rule for the capability list of a container: everything in
// all for a privileged one; otherwise the defaults minus drop plus add, where --cap-add ALL
// means all but the dropped ones and --cap-drop ALL means only the added ones (add wins).
// add and drop must be normalized. all is used only for privileged and --cap-add ALL
// (Options.Process lists it only then).
func tweakCapabilities(defaults, all, add, drop []string, privileged bool) []string {
	switch {
	case privileged:
		return slices.Clone(all)
	case slices.Contains(add, allCaps):
		return slices.DeleteFunc(slices.Clone(all), func(c string) bool { return slices.Contains(drop, c) })
	case slices.Contains(drop, allCaps):
		return slices.DeleteFunc(slices.Clone(add), func(c string) bool { return c == allCaps })
	}
	out := slices.DeleteFunc(slices.Clone(defaults), func(c string) bool { return slices.Contains(drop, c) })
	for _, c := range add {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// CapMask turns canonical capability names into a bit mask (bit N is capability N).
func CapMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		c, ok := capByName(n)
		if !ok {
			return 0, fmt.Errorf("%w: unknown capability %q", ErrInvalidCapability, n)
		}
		m |= 1 << uint(c)
	}
	return m, nil
}

// capNames turns a mask back into canonical names, lowest bit first.
func capNames(m uint64) []string {
	var out []string
	for m != 0 {
		c := capability.Cap(bits.TrailingZeros64(m))
		m &^= 1 << uint(c)
		out = append(out, capName(c))
	}
	return out
}

// CapSets are the five capability sets of a process as bit masks.
type CapSets struct {
	Bounding    uint64 `json:"bounding"`
	Effective   uint64 `json:"effective"`
	Permitted   uint64 `json:"permitted"`
	Inheritable uint64 `json:"inheritable"`
	Ambient     uint64 `json:"ambient"`
}

// CapSetsFor is what docker gives a process running as uid with the capability mask caps:
// root gets them bounding, effective and permitted; any other user only in the bounding set,
// as execve would leave a non-root user without file capabilities. Inheritable and ambient
// are always empty (docker clears them since CVE-2022-24769).
func CapSetsFor(caps uint64, uid uint32) CapSets {
	if uid == 0 {
		return CapSets{Bounding: caps, Effective: caps, Permitted: caps}
	}
	return CapSets{Bounding: caps}
}

// ownPermitted returns the calling thread's permitted capabilities.
func ownPermitted() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, nil
}
