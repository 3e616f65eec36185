package cgroup

// Device rules: the allow list a container gets, as lines for the v1
// devices controller (devices.allow / devices.deny) and as the eBPF program
// (BPF_PROG_TYPE_CGROUP_DEVICE) that enforces it on cgroup v2. The program
// has the shape of runc's device filter (itself crun's): load the access
// type, access mode, major and minor into registers, then one block per rule
// that jumps to the next block on a mismatch and returns the rule's verdict
// on a match, then the default verdict.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// anyID is the wildcard major or minor number ("*").
const anyID = -1

// deviceRule is one rule of the devices controller, as written to
// devices.allow or devices.deny on v1: "TYPE MAJOR:MINOR ACCESS".
type deviceRule struct {
	// typ is 'c' (character device), 'b' (block device) or 'a' (every
	// device: the rule then resets the whole list to allow or deny all).
	typ byte
	// major and minor are the device numbers, anyID for "*".
	major, minor int64
	// access is a combination of 'r' (read), 'w' (write), 'm' (mknod).
	access string
	// allow: an allow rule, else a deny rule.
	allow bool
}

// String is the rule as the v1 devices controller reads it, e.g.
// "c 1:3 rwm" or "c 136:* rwm".
func (r deviceRule) String() string {
	id := func(n int64) string {
		if n == anyID {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return string(r.typ) + " " + id(r.major) + ":" + id(r.minor) + " " + r.access
}

// accessBits returns the BPF_DEVCG_ACC_* bits of the access string.
func accessBits(access string) (int32, error) {
	var bits int32
	for i := 0; i < len(access); i++ {
		var b int32
		switch access[i] {
		case 'r':
			b = unix.BPF_DEVCG_ACC_READ
		case 'w':
			b = unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			b = unix.BPF_DEVCG_ACC_MKNOD
		default:
			return 0, fmt.Errorf("unknown device access %q in %q (want r, w and/or m)", access[i], access)
		}
		bits |= b
	}
	if bits == 0 {
		return 0, errors.New("empty device access")
	}
	return bits, nil
}

// insn is one eBPF instruction (struct bpf_insn of linux/bpf.h).
type insn struct {
	op       uint8
	dst, src uint8
	off      int16
	imm      int32
}

// insnSize is the size of an encoded insn.
const insnSize = 8

// The opcodes the device filter uses (class | operation | source).
const (
	opLoadW    = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W // dst = *(u32 *)(src + off)
	opAndImm32 = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K // dst = u32(dst & imm)
	opRshImm32 = unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K // dst = u32(dst >> imm)
	opMovImm32 = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K // dst = u32(imm)
	opMovReg32 = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X // dst = u32(src)
	opJneImm   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K // if dst != imm: pc += off
	opJneReg   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_X // if dst != src: pc += off
	opExit     = unix.BPF_JMP | unix.BPF_EXIT             // return r0
)

// The registers of the device filter.
const (
	regRet    = 0 // r0: the verdict, 1 allows
	regTmp    = 1 // r1: the context pointer, free once the fields are loaded
	regType   = 2 // r2: BPF_DEVCG_DEV_CHAR or BPF_DEVCG_DEV_BLOCK
	regAccess = 3 // r3: BPF_DEVCG_ACC_* bits of the access asked for
	regMajor  = 4 // r4
	regMinor  = 5 // r5
)

const (
	// Offsets in struct bpf_cgroup_dev_ctx: u32 access_type (device type
	// in the low 16 bits, access in the high ones), u32 major, u32 minor.
	ctxAccess = 0
	ctxMajor  = 4
	ctxMinor  = 8

	allAccess = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD
	// deviceBPFLicense is the program's license (as MODULE_LICENSE).
	deviceBPFLicense = "Apache"
)

// deviceFilter returns the eBPF program that applies rules the way the v1
// devices controller would after "deny a *:* rwm" and the rules in order:
// an "a" rule allows or denies everything and clears the list, the other
// rules are exceptions to that default, merged by device (their access
// combines). A rule with the same verdict as the default would remove part
// of an exception, which the allow lists of this package never need: it is
// refused. Exceptions are sorted by (major, minor, type), as runc does,
// which keeps the program the same for the same set of rules.
func deviceFilter(rules []deviceRule) ([]insn, error) {
	type key struct {
		typ          byte
		major, minor int64
	}
	defaultAllow := false
	var keys []key
	access := make(map[key]int32)
	for _, r := range rules {
		bits, err := accessBits(r.access)
		if err != nil {
			return nil, fmt.Errorf("device rule %q: %w", r, err)
		}
		switch r.typ {
		case 'a':
			defaultAllow, keys = r.allow, nil
			clear(access)
			continue
		case 'b', 'c':
		default:
			return nil, fmt.Errorf("device rule %q: unknown type %q (want a, b or c)", r, r.typ)
		}
		for _, n := range []int64{r.major, r.minor} {
			if n != anyID && (n < 0 || n > math.MaxInt32) {
				return nil, fmt.Errorf("device rule %q: device number %d out of range", r, n)
			}
		}
		if r.allow == defaultAllow {
			return nil, fmt.Errorf("device rule %q: only exceptions to the default (%s) are supported", r, verdict(defaultAllow))
		}
		k := key{r.typ, r.major, r.minor}
		if _, ok := access[k]; !ok {
			keys = append(keys, k)
		}
		access[k] |= bits
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor), cmp.Compare(a.typ, b.typ))
	})

	prog := []insn{
		{op: opLoadW, dst: regType, src: regTmp, off: ctxAccess},
		{op: opAndImm32, dst: regType, imm: 0xffff},
		{op: opLoadW, dst: regAccess, src: regTmp, off: ctxAccess},
		{op: opRshImm32, dst: regAccess, imm: 16},
		{op: opLoadW, dst: regMajor, src: regTmp, off: ctxMajor},
		{op: opLoadW, dst: regMinor, src: regTmp, off: ctxMinor},
	}
	for _, k := range keys {
		var block []insn // its jumps hold the index of the next block for now
		typ := int32(unix.BPF_DEVCG_DEV_CHAR)
		if k.typ == 'b' {
			typ = unix.BPF_DEVCG_DEV_BLOCK
		}
		block = append(block, insn{op: opJneImm, dst: regType, imm: typ})
		if bits := access[k]; bits != allAccess {
			// Every access asked for must be in the rule's.
			block = append(block,
				insn{op: opMovReg32, dst: regTmp, src: regAccess},
				insn{op: opAndImm32, dst: regTmp, imm: bits},
				insn{op: opJneReg, dst: regTmp, src: regAccess})
		}
		if k.major != anyID {
			block = append(block, insn{op: opJneImm, dst: regMajor, imm: int32(k.major)})
		}
		if k.minor != anyID {
			block = append(block, insn{op: opJneImm, dst: regMinor, imm: int32(k.minor)})
		}
		block = append(block, insn{op: opMovImm32, dst: regRet, imm: b2i(!defaultAllow)}, insn{op: opExit})
		start := len(prog)
		next := start + len(block)
		for i := range block {
			if block[i].op == opJneImm || block[i].op == opJneReg {
				block[i].off = int16(next - (start + i + 1))
			}
		}
		prog = append(prog, block...)
	}
	return append(prog, insn{op: opMovImm32, dst: regRet, imm: b2i(defaultAllow)}, insn{op: opExit}), nil
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// encodeProgram lays prog out as the kernel reads struct bpf_insn: opcode,
// then the registers in one byte (dst_reg:4 then src_reg:4 as C bit-fields,
// so dst is the low nibble on little-endian machines and the high one on
// big-endian ones), then off and imm in the machine's byte order.
func encodeProgram(prog []insn) []byte {
	le := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	out := make([]byte, len(prog)*insnSize)
	for i, in := range prog {
		b := out[i*insnSize : (i+1)*insnSize]
		b[0] = in.op
		if le {
			b[1] = in.src<<4 | in.dst&0xf
		} else {
			b[1] = in.dst<<4 | in.src&0xf
		}
		binary.NativeEndian.PutUint16(b[2:], uint16(in.off))
		binary.NativeEndian.PutUint32(b[4:], uint32(in.imm))
	}
	return out
}
