package cgroup

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDeviceRuleString(t *testing.T) {
	// The strings are those of CgroupString of the rule type of
	// github.com/opencontainers/cgroups/devices/config, which this package
	// wrote to devices.allow before it had its own.
	for _, tc := range []struct {
		r    deviceRule
		want string
	}{
		{deviceRule{typ: 'c', major: anyID, minor: anyID, access: "m", allow: true}, "c *:* m"},
		{deviceRule{typ: 'b', major: 8, minor: anyID, access: "rw"}, "b 8:* rw"},
		{deviceRule{typ: 'a', major: anyID, minor: anyID, access: "rwm", allow: true}, "a *:* rwm"},
		{deviceRule{typ: 'c', major: 4294967295, minor: 0, access: "", allow: true}, "c 4294967295:0 "},
		{deviceRule{typ: 'c', major: 136, minor: anyID, access: "rwm", allow: true}, "c 136:* rwm"},
		{deviceRule{typ: 'c', major: 1, minor: 3, access: "rwm", allow: true}, "c 1:3 rwm"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

// disasm decodes an encoded program back into one line per instruction
// (the notation of the kernel's verifier log), failing on anything the
// device filter does not use.
func disasm(t *testing.T, code []byte) []string {
	t.Helper()
	if len(code)%insnSize != 0 {
		t.Fatalf("program of %d bytes, not a multiple of %d", len(code), insnSize)
	}
	var out []string
	for pc := 0; pc < len(code)/insnSize; pc++ {
		in := decode(code[pc*insnSize:])
		var s string
		switch in.op {
		case opLoadW:
			s = fmt.Sprintf("r%d = *(u32 *)(r%d %+d)", in.dst, in.src, in.off)
		case opAndImm32:
			s = fmt.Sprintf("w%d &= %#x", in.dst, in.imm)
		case opRshImm32:
			s = fmt.Sprintf("w%d >>= %d", in.dst, in.imm)
		case opMovImm32:
			s = fmt.Sprintf("w%d = %d", in.dst, in.imm)
		case opMovReg32:
			s = fmt.Sprintf("w%d = w%d", in.dst, in.src)
		case opJneImm:
			s = fmt.Sprintf("if r%d != %d goto %d", in.dst, in.imm, pc+1+int(in.off))
		case opJneReg:
			s = fmt.Sprintf("if r%d != r%d goto %d", in.dst, in.src, pc+1+int(in.off))
		case opExit:
			s = "exit"
		default:
			t.Fatalf("%d: unexpected opcode %#x", pc, in.op)
		}
		out = append(out, fmt.Sprintf("%d: %s", pc, s))
	}
	return out
}

// decode reads one instruction the way the kernel does on this machine.
func decode(b []byte) insn {
	in := insn{op: b[0], dst: b[1] & 0xf, src: b[1] >> 4}
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 { // big-endian
		in.dst, in.src = b[1]>>4, b[1]&0xf
	}
	in.off = int16(binary.NativeEndian.Uint16(b[2:]))
	in.imm = int32(binary.NativeEndian.Uint32(b[4:]))
	return in
}

func TestEncodeProgram(t *testing.T) {
	code := encodeProgram([]insn{{op: opJneReg, dst: 1, src: 3, off: -2, imm: -5}})
	want := []byte{0x5d, 0x31, 0xfe, 0xff, 0xfb, 0xff, 0xff, 0xff} // little-endian
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		want = []byte{0x5d, 0x13, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfb}
	}
	if string(code) != string(want) {
		t.Errorf("encoded % x, want % x", code, want)
	}
}

func TestDeviceFilterListing(t *testing.T) {
	// The same instructions as runc's filter for these rules (its
	// devicefilter_test.go), in the same (major, minor, type) order.
	load := `0: r2 = *(u32 *)(r1 +0)
1: w2 &= 0xffff
2: r3 = *(u32 *)(r1 +0)
3: w3 >>= 16
4: r4 = *(u32 *)(r1 +4)
5: r5 = *(u32 *)(r1 +8)
`
	for _, tc := range []struct {
		name  string
		rules []deviceRule
		want  string
	}{
		{"none", nil, load + "6: w0 = 0\n7: exit"},
		{"all", Limits{AllDevices: true}.deviceRules(), load + "6: w0 = 1\n7: exit"},
		{"default", Limits{}.deviceRules(), load + `6: if r2 != 1 goto 12
7: w1 = w3
8: w1 &= 0x1
9: if r1 != r3 goto 12
10: w0 = 1
11: exit
12: if r2 != 2 goto 18
13: w1 = w3
14: w1 &= 0x1
15: if r1 != r3 goto 18
16: w0 = 1
17: exit
18: if r2 != 2 goto 23
19: if r4 != 1 goto 23
20: if r5 != 3 goto 23
21: w0 = 1
22: exit
23: if r2 != 2 goto 28
24: if r4 != 1 goto 28
25: if r5 != 5 goto 28
26: w0 = 1
27: exit
28: if r2 != 2 goto 33
29: if r4 != 1 goto 33
30: if r5 != 7 goto 33
31: w0 = 1
32: exit
33: if r2 != 2 goto 38
34: if r4 != 1 goto 38
35: if r5 != 8 goto 38
36: w0 = 1
37: exit
38: if r2 != 2 goto 43
39: if r4 != 1 goto 43
40: if r5 != 9 goto 43
41: w0 = 1
42: exit
43: if r2 != 2 goto 48
44: if r4 != 5 goto 48
45: if r5 != 0 goto 48
46: w0 = 1
47: exit
48: if r2 != 2 goto 53
49: if r4 != 5 goto 53
50: if r5 != 1 goto 53
51: w0 = 1
52: exit
53: if r2 != 2 goto 58
54: if r4 != 5 goto 58
55: if r5 != 2 goto 58
56: w0 = 1
57: exit
58: if r2 != 2 goto 62
59: if r4 != 136 goto 62
60: w0 = 1
61: exit
62: w0 = 0
63: exit`},
		// Rules for one device merge (r and w: 0x2|0x4).
		{"merged", []deviceRule{
			{typ: 'c', major: 1, minor: 3, access: "r", allow: true},
			{typ: 'c', major: 1, minor: 3, access: "w", allow: true},
		}, load + `6: if r2 != 2 goto 14
7: w1 = w3
8: w1 &= 0x6
9: if r1 != r3 goto 14
10: if r4 != 1 goto 14
11: if r5 != 3 goto 14
12: w0 = 1
13: exit
14: w0 = 0
15: exit`},
		// After "allow all", a deny rule is an exception that returns 0.
		{"blacklist", []deviceRule{
			{typ: 'a', major: anyID, minor: anyID, access: "rwm", allow: true},
			{typ: 'b', major: 8, minor: 0, access: "rwm"},
		}, load + `6: if r2 != 1 goto 11
7: if r4 != 8 goto 11
8: if r5 != 0 goto 11
9: w0 = 0
10: exit
11: w0 = 1
12: exit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := deviceFilter(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(disasm(t, encodeProgram(prog)), "\n")
			if got != tc.want {
				t.Errorf("program:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// devAccess is one device access as the kernel hands it to the program
// (struct bpf_cgroup_dev_ctx).
type devAccess struct {
	typ          byte   // 'c' or 'b'
	access       string // of "rwm"
	major, minor uint32
}

func (a devAccess) String() string {
	return fmt.Sprintf("%c %d:%d %s", a.typ, a.major, a.minor, a.access)
}

// runFilter executes an encoded device filter on one access, as the kernel
// would after its verifier: only the instructions the filter uses, loads
// only from the context (r1 as the program got it), every register read
// must have been written, jumps must stay in the program, and it must end
// in exit with r0 set. It returns r0.
func runFilter(t *testing.T, code []byte, a devAccess) uint64 {
	t.Helper()
	typ := uint32(unix.BPF_DEVCG_DEV_CHAR)
	if a.typ == 'b' {
		typ = unix.BPF_DEVCG_DEV_BLOCK
	}
	acc, err := accessBits(a.access)
	if err != nil {
		t.Fatal(err)
	}
	ctx := make([]byte, 12)
	binary.NativeEndian.PutUint32(ctx[0:], typ|uint32(acc)<<16)
	binary.NativeEndian.PutUint32(ctx[4:], a.major)
	binary.NativeEndian.PutUint32(ctx[8:], a.minor)

	var reg [11]uint64
	var set [11]bool
	set[1] = true
	isCtx := true // r1 still holds the context pointer
	n := len(code) / insnSize
	read := func(pc int, r uint8) uint64 {
		if r > 10 || !set[r] {
			t.Fatalf("%s: pc %d reads r%d before it is written", a, pc, r)
		}
		return reg[r]
	}
	write := func(pc int, r uint8, v uint64) {
		if r > 9 {
			t.Fatalf("%s: pc %d writes r%d", a, pc, r)
		}
		reg[r], set[r] = v, true
		if r == 1 {
			isCtx = false
		}
	}
	for pc, steps := 0, 0; ; pc, steps = pc+1, steps+1 {
		if pc < 0 || pc >= n || steps > 4*n {
			t.Fatalf("%s: pc %d outside the program of %d instructions (or a loop)", a, pc, n)
		}
		in := decode(code[pc*insnSize:])
		switch in.op {
		case opLoadW:
			if in.src != 1 || !isCtx || in.off < 0 || int(in.off)+4 > len(ctx) {
				t.Fatalf("%s: pc %d: load from r%d%+d, not inside the context", a, pc, in.src, in.off)
			}
			write(pc, in.dst, uint64(binary.NativeEndian.Uint32(ctx[in.off:])))
		case opAndImm32:
			write(pc, in.dst, uint64(uint32(read(pc, in.dst))&uint32(in.imm)))
		case opRshImm32:
			write(pc, in.dst, uint64(uint32(read(pc, in.dst))>>uint32(in.imm)))
		case opMovImm32:
			write(pc, in.dst, uint64(uint32(in.imm)))
		case opMovReg32:
			write(pc, in.dst, uint64(uint32(read(pc, in.src))))
		case opJneImm:
			if read(pc, in.dst) != uint64(int64(in.imm)) { // imm is sign-extended
				pc += int(in.off)
			}
		case opJneReg:
			if read(pc, in.dst) != read(pc, in.src) {
				pc += int(in.off)
			}
		case opExit:
			return read(pc, 0)
		default:
			t.Fatalf("%s: pc %d: unexpected opcode %#x", a, pc, in.op)
		}
	}
}

// v1Allows is the devices controller of cgroup v1 deciding an access in a
// cgroup that denied everything, then got rules (allow rules only, or "a"):
// an "a" rule resets the list, an exception for a device already listed adds
// its access to that entry, and an access is allowed if one entry matches
// the device and covers all the access asked for. It is the reference the
// programs are checked against.
func v1Allows(rules []deviceRule, a devAccess) bool {
	allowAll := false
	var list []deviceRule
	for _, r := range rules {
		if r.typ == 'a' {
			allowAll, list = r.allow, nil
			continue
		}
		merged := false
		for i, e := range list {
			if e.typ == r.typ && e.major == r.major && e.minor == r.minor {
				list[i].access += r.access
				merged = true
			}
		}
		if !merged {
			list = append(list, r)
		}
	}
	if allowAll {
		return true
	}
	for _, r := range list {
		if r.typ != a.typ || (r.major != anyID && r.major != int64(a.major)) || (r.minor != anyID && r.minor != int64(a.minor)) {
			continue
		}
		covered := true
		for _, c := range a.access {
			covered = covered && strings.ContainsRune(r.access, c)
		}
		if covered {
			return true
		}
	}
	return false
}

func TestDeviceFilterDecisions(t *testing.T) {
	var accesses []devAccess
	for _, typ := range []byte{'c', 'b'} {
		for _, dev := range [][2]uint32{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {1, 11}, {5, 0}, {5, 1}, {5, 2}, {5, 3},
			{136, 0}, {136, 7}, {137, 0}, {0, 3}, {3, 1}, {8, 0}, {10, 200}, {4095, 1048575}, {0xffffffff, 0xffffffff}} {
			for _, acc := range []string{"r", "w", "m", "rw", "rm", "wm", "rwm"} {
				accesses = append(accesses, devAccess{typ, acc, dev[0], dev[1]})
			}
		}
	}
	sets := map[string][]deviceRule{
		"default": Limits{}.deviceRules(),
		"all":     Limits{AllDevices: true}.deviceRules(),
		"none":    nil,
		"partial": {
			{typ: 'c', major: 1, minor: anyID, access: "r", allow: true},
			{typ: 'c', major: anyID, minor: 3, access: "w", allow: true},
			{typ: 'b', major: 8, minor: 0, access: "rm", allow: true},
		},
		"merged": {
			{typ: 'c', major: 1, minor: 3, access: "r", allow: true},
			{typ: 'c', major: 1, minor: 3, access: "w", allow: true},
			{typ: 'c', major: 1, minor: 3, access: "m", allow: true},
			{typ: 'a', major: anyID, minor: anyID, access: "rwm"},
			{typ: 'c', major: 5, minor: anyID, access: "w", allow: true},
			{typ: 'c', major: 5, minor: anyID, access: "r", allow: true},
		},
	}
	for name, rules := range sets {
		t.Run(name, func(t *testing.T) {
			prog, err := deviceFilter(rules)
			if err != nil {
				t.Fatal(err)
			}
			code := encodeProgram(prog)
			allowed := 0
			for _, a := range accesses {
				got := runFilter(t, code, a)
				if want := v1Allows(rules, a); got != uint64(b2i(want)) {
					t.Errorf("%s: program returns %d, want allowed=%v", a, got, want)
				}
				allowed += int(got)
			}
			t.Logf("%d of %d accesses allowed", allowed, len(accesses))
		})
	}

	// The default set, spelled out: what a container may and may not do.
	prog, err := deviceFilter(Limits{}.deviceRules())
	if err != nil {
		t.Fatal(err)
	}
	code := encodeProgram(prog)
	for a, want := range map[devAccess]bool{
		{'c', "rw", 1, 3}:       true,  // /dev/null
		{'c', "rw", 1, 7}:       true,  // /dev/full
		{'c', "rw", 136, 4}:     true,  // /dev/pts/4
		{'c', "rw", 5, 2}:       true,  // /dev/ptmx
		{'c', "m", 1, 11}:       true,  // mknod of anything
		{'b', "m", 8, 0}:        true,  // mknod of anything
		{'c', "r", 1, 11}:       false, // /dev/kmsg
		{'c', "w", 1, 1}:        false, // /dev/mem
		{'b', "r", 8, 0}:        false, // /dev/sda
		{'c', "rw", 10, 200}:    false, // /dev/net/tun
		{'c', "rwm", 4, 0}:      false, // tty0
		{'c', "rw", 1 << 31, 3}: false,
	} {
		if got := runFilter(t, code, a) == 1; got != want {
			t.Errorf("default rules, %s: allowed=%v, want %v", a, got, want)
		}
	}
}

func TestDeviceFilterRefuses(t *testing.T) {
	for _, tc := range []struct {
		rules []deviceRule
		want  string
	}{
		{[]deviceRule{{typ: 'p', major: 1, minor: 1, access: "r", allow: true}}, "unknown type"},
		{[]deviceRule{{typ: 'c', major: 1, minor: 1, access: "x", allow: true}}, "unknown device access"},
		{[]deviceRule{{typ: 'c', major: 1, minor: 1, access: "", allow: true}}, "empty device access"},
		{[]deviceRule{{typ: 'c', major: 1 << 31, minor: 1, access: "r", allow: true}}, "out of range"},
		{[]deviceRule{{typ: 'c', major: 1, minor: -2, access: "r", allow: true}}, "out of range"},
		// Removing part of an exception (v1's "deny" in an allow list).
		{[]deviceRule{{typ: 'c', major: 1, minor: 3, access: "rwm", allow: true}, {typ: 'c', major: 1, minor: 3, access: "w"}}, "only exceptions"},
	} {
		if _, err := deviceFilter(tc.rules); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.rules, err, tc.want)
		}
	}
}
