package security

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	mseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	wantAllow = uint32(unix.SECCOMP_RET_ALLOW)
	wantEPERM = uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	wantNOSYS = uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)
)

// testSel is a container with docker's default capabilities on a 6.18 kernel.
func testSel(extra ...string) selection {
	return selection{arch: mobyArch("amd64"), kernel: kernelVersion{6, 18}, caps: append(DefaultCapabilities(), extra...)}
}

// vm runs a compiled filter in x/net/bpf's interpreter. Its loads are big-endian, so every
// 32-bit word of seccomp_data is written big-endian at its offset; a 64-bit argument is two
// words, low first, as on a little-endian host.
type vm struct{ m *bpf.VM }

func newVM(t *testing.T, f *Filter) vm {
	t.Helper()
	if f == nil || len(f.Program)%8 != 0 {
		t.Fatalf("bad filter %v", f)
	}
	var raw []bpf.RawInstruction
	for i := 0; i < len(f.Program); i += 8 {
		b := f.Program[i:]
		raw = append(raw, bpf.RawInstruction{Op: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])})
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter has instructions the interpreter does not know")
	}
	m, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return vm{m}
}

func (v vm) run(t *testing.T, auditArch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32))
	}
	r, err := v.m.Run(b)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r)
}

func amd64(t *testing.T) *archInfo {
	t.Helper()
	info, err := nativeArch()
	if err != nil || info.auditArch != unix.AUDIT_ARCH_X86_64 {
		t.Skip("the filter tests are written for x86_64")
	}
	return info
}

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := nativeSyscall(name)
	if !ok {
		t.Fatalf("no syscall %q", name)
	}
	return n
}

func buildDefault(t *testing.T, sel selection) vm {
	t.Helper()
	f, err := buildFilter(mseccomp.DefaultProfile(), sel, amd64(t))
	if err != nil {
		t.Fatal(err)
	}
	return newVM(t, f)
}

// TestDefaultProfile checks docker's semantics on the calls the profile singles out.
func TestDefaultProfile(t *testing.T) {
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	def := buildDefault(t, testSel())
	admin := buildDefault(t, testSel("CAP_SYS_ADMIN"))
	oldSel := testSel()
	oldSel.kernel = kernelVersion{4, 4}
	old := buildDefault(t, oldSel)
	newUser := uint64(unix.CLONE_NEWUSER | uint64(unix.SIGCHLD))
	for _, tc := range []struct {
		name string
		v    vm
		call string
		args []uint64
		want uint32
	}{
		{"read allowed", def, "read", nil, wantAllow},
		{"execve allowed", def, "execve", nil, wantAllow},
		{"mount refused", def, "mount", nil, wantEPERM},
		{"mount with CAP_SYS_ADMIN", admin, "mount", nil, wantAllow},
		{"unshare refused", def, "unshare", []uint64{unix.CLONE_NEWUSER}, wantEPERM},
		{"setns refused", def, "setns", nil, wantEPERM},
		{"keyctl refused", def, "keyctl", nil, wantEPERM},
		{"bpf refused", def, "bpf", nil, wantEPERM},
		{"init_module refused", def, "init_module", nil, wantEPERM},
		{"finit_module refused", def, "finit_module", nil, wantEPERM},
		{"kexec_load refused", def, "kexec_load", nil, wantEPERM},
		{"reboot refused", def, "reboot", nil, wantEPERM},
		{"sethostname refused", def, "sethostname", nil, wantEPERM},
		{"plain clone allowed", def, "clone", []uint64{uint64(unix.SIGCHLD)}, wantAllow},
		{"thread clone allowed", def, "clone", []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, wantAllow},
		{"clone into a user namespace refused", def, "clone", []uint64{newUser}, wantEPERM},
		{"clone with a namespace flag in the high word", def, "clone", []uint64{1<<32 | uint64(unix.SIGCHLD)}, wantAllow},
		{"clone namespaces with CAP_SYS_ADMIN", admin, "clone", []uint64{newUser}, wantAllow},
		{"clone3 says ENOSYS", def, "clone3", nil, wantNOSYS},
		{"clone3 with CAP_SYS_ADMIN", admin, "clone3", nil, wantAllow},
		{"personality 0", def, "personality", []uint64{0}, wantAllow},
		{"personality query", def, "personality", []uint64{0xffffffff}, wantAllow},
		{"personality READ_IMPLIES_EXEC refused", def, "personality", []uint64{0x0400000}, wantEPERM},
		// A high word that is a syscall number must not turn a refused call into that one.
		{"personality with a syscall number in the high word", def, "personality", []uint64{uint64(nr(t, "read"))<<32 | 0x0400000}, wantEPERM},
		{"socket AF_INET", def, "socket", []uint64{unix.AF_INET}, wantAllow},
		{"socket AF_UNIX", def, "socket", []uint64{unix.AF_UNIX}, wantAllow},
		{"socket AF_NETLINK", def, "socket", []uint64{unix.AF_NETLINK}, wantAllow},
		{"socket AF_VSOCK refused", def, "socket", []uint64{unix.AF_VSOCK}, wantEPERM},
		{"socket AF_ALG refused", def, "socket", []uint64{unix.AF_ALG}, wantEPERM},
		{"socket AF_VSOCK with a high word", def, "socket", []uint64{1<<32 | unix.AF_VSOCK}, wantEPERM},
		{"ptrace allowed since 4.8", def, "ptrace", nil, wantAllow},
		{"ptrace refused before 4.8", old, "ptrace", nil, wantEPERM},
		{"syslog refused", def, "syslog", nil, wantEPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.run(t, x86, nr(t, tc.call), tc.args...); got != tc.want {
				t.Errorf("%s%v = %#x, want %#x", tc.call, tc.args, got, tc.want)
			}
		})
	}
	t.Run("x32 calls get ENOSYS", func(t *testing.T) {
		if got := def.run(t, x86, nr(t, "read")|0x40000000); got != wantNOSYS {
			t.Errorf("got %#x", got)
		}
	})
	t.Run("other architectures get the default action", func(t *testing.T) {
		if got := def.run(t, uint32(unix.AUDIT_ARCH_I386), 3 /* read on i386 */); got != wantEPERM {
			t.Errorf("got %#x", got)
		}
	})
	t.Run("unknown syscall numbers get the default action", func(t *testing.T) {
		if got := def.run(t, x86, 4000); got != wantEPERM {
			t.Errorf("got %#x", got)
		}
	})
}

// refAction is what a filter must return for one call, computed from the selected rules
// directly: among the rules that match (name, and arguments as libseccomp compares them, with
// runc's OR for repeated indexes), the most severe action; the default if none.
func refAction(t *testing.T, rules []specs.LinuxSyscall, def retAction, name string, args [6]uint64) uint32 {
	t.Helper()
	best, found := def, false
	for _, r := range rules {
		if !slices.Contains(r.Names, name) {
			continue
		}
		act, err := parseAction(r.Action, r.ErrnoRet)
		if err != nil {
			t.Fatal(err)
		}
		if act == def || !argsMatch(r.Args, args) {
			continue
		}
		if !found || severity(act) < severity(best) || (severity(act) == severity(best) && act < best) {
			best, found = act, true
		}
	}
	return uint32(best)
}

func argsMatch(conds []specs.LinuxSeccompArg, args [6]uint64) bool {
	if len(conds) == 0 {
		return true
	}
	count := map[uint]int{}
	for _, c := range conds {
		count[c.Index]++
	}
	or := false
	for _, n := range count {
		or = or || n > 1
	}
	one := func(c specs.LinuxSeccompArg) bool {
		a := args[c.Index]
		switch c.Op {
		case specs.OpNotEqual:
			return a != c.Value
		case specs.OpLessThan:
			return a < c.Value
		case specs.OpLessEqual:
			return a <= c.Value
		case specs.OpEqualTo:
			return a == c.Value
		case specs.OpGreaterEqual:
			return a >= c.Value
		case specs.OpGreaterThan:
			return a > c.Value
		case specs.OpMaskedEqual:
			return a&c.Value == c.ValueTwo
		}
		panic("op " + c.Op)
	}
	if or {
		return slices.ContainsFunc(conds, one)
	}
	for _, c := range conds {
		if !one(c) {
			return false
		}
	}
	return true
}

// TestFilterAgreesWithRules runs the compiled default profile, with and without
// CAP_SYS_ADMIN, on every x86_64 syscall and a spread of argument values around every value
// the rules compare with, and checks each result against refAction.
func TestFilterAgreesWithRules(t *testing.T) {
	info := amd64(t)
	for _, sel := range []selection{testSel(), testSel("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF")} {
		p := mseccomp.DefaultProfile()
		rules, err := selectRules(p, sel)
		if err != nil {
			t.Fatal(err)
		}
		def, _ := parseAction(p.DefaultAction, p.DefaultErrnoRet)
		f, err := buildFilter(mseccomp.DefaultProfile(), sel, info)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, f)
		// Every call with a few values; calls with argument rules with values around
		// every value those compare with, in the low and the high word.
		few := []uint64{0, 1, ^uint64(0), 1 << 32}
		spread := map[string][]uint64{}
		for _, r := range rules {
			for _, a := range r.Args {
				for _, name := range r.Names {
					for _, x := range []uint64{a.Value, a.ValueTwo} {
						spread[name] = append(spread[name], x, x+1, x-1, x|1<<32, x|uint64(nr(t, "read"))<<32, x^0xffffffff)
					}
				}
			}
		}
		checked := 0
		for _, name := range strings.Fields(info.names) {
			num, _ := info.syscall(name)
			values := append(slices.Clone(few), spread[name]...)
			for _, x := range values {
				for _, args := range [][6]uint64{{x}, {x, x, x, x, x, x}, {0, x}} {
					want := refAction(t, rules, def, name, args)
					if got := v.run(t, info.auditArch, num, args[:]...); got != want {
						t.Fatalf("caps %v: %s(%#x...) = %#x, want %#x", sel.caps, name, args, got, want)
					}
					checked++
				}
			}
		}
		if checked < 4000 {
			t.Fatalf("only %d calls checked", checked)
		}
	}
}

// TestFilterSearchCoversEveryNumber: the binary search over syscall numbers gives every 32-bit
// number what the rules say, not only the numbers of named calls: every number up to past the
// table, the edges of every range, the x32 bit and the top of the range; and a profile whose
// rules reach number 0 and the last number has no gap at either end.
func TestFilterSearchCoversEveryNumber(t *testing.T) {
	info := amd64(t)
	byNum := map[uint32]string{}
	for _, name := range strings.Fields(info.names) {
		num, _ := info.syscall(name)
		byNum[num] = name
	}
	sel := testSel()
	p := mseccomp.DefaultProfile()
	rules, err := selectRules(p, sel)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := parseAction(p.DefaultAction, p.DefaultErrnoRet)
	f, err := buildFilter(mseccomp.DefaultProfile(), sel, info)
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, f)
	var nums []uint32
	for n := uint32(0); n < 2048; n++ {
		nums = append(nums, n)
	}
	nums = append(nums, x32SyscallBit-1, x32SyscallBit, x32SyscallBit+1, 1<<31, ^uint32(0)-1, ^uint32(0))
	for _, num := range nums {
		for _, args := range [][6]uint64{{}, {1, 2, 3, 4, 5, 6}, {^uint64(0)}} {
			want := uint32(def)
			switch name, ok := byNum[num]; {
			case num >= x32SyscallBit: // x32 calls, and beyond
				want = wantNOSYS
			case ok:
				want = refAction(t, rules, def, name, args)
			}
			if got := v.run(t, info.auditArch, num, args[:]...); got != want {
				t.Fatalf("call %d (%q) args %#x: %#x, want %#x", num, byNum[num], args, got, want)
			}
		}
	}
	// A search that must end at both edges of the number space (an architecture without
	// x32 numbers, so that all of them reach it).
	edge := &ruleSet{}
	edge.add(retAllow, "first", nil)
	edge.add(retAllow, "last", nil)
	edges := &archInfo{auditArch: unix.AUDIT_ARCH_AARCH64, syscall: func(name string) (uint32, bool) {
		return map[string]uint32{"first": 0, "last": ^uint32(0)}[name], true
	}}
	insns, err := assemble(edge, def, edges)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		t.Fatal(err)
	}
	ef := &Filter{}
	for _, r := range raw {
		ef.Program = binary.NativeEndian.AppendUint16(ef.Program, r.Op)
		ef.Program = append(ef.Program, r.Jt, r.Jf)
		ef.Program = binary.NativeEndian.AppendUint32(ef.Program, r.K)
	}
	ev := newVM(t, ef)
	for num, want := range map[uint32]uint32{0: wantAllow, 1: uint32(def), 5000: uint32(def), x32SyscallBit: uint32(def), ^uint32(0) - 1: uint32(def), ^uint32(0): wantAllow} {
		if got := ev.run(t, unix.AUDIT_ARCH_AARCH64, num); got != want {
			t.Errorf("edge profile: call %#x: %#x, want %#x", num, got, want)
		}
	}
}

func TestSelectRules(t *testing.T) {
	k := func(a, b uint64) *mseccomp.KernelVersion { return &mseccomp.KernelVersion{Kernel: a, Major: b} }
	p := &mseccomp.Seccomp{Syscalls: []*mseccomp.Syscall{
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"always"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"admin"}}, Includes: &mseccomp.Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"admin-and-boot"}}, Includes: &mseccomp.Filter{Caps: []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"not-admin"}}, Excludes: &mseccomp.Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"not-admin-or-boot"}}, Excludes: &mseccomp.Filter{Caps: []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"amd64-only"}}, Includes: &mseccomp.Filter{Arches: []string{"amd64", "x32"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"arm-only"}}, Includes: &mseccomp.Filter{Arches: []string{"arm", "arm64"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"not-s390"}}, Excludes: &mseccomp.Filter{Arches: []string{"s390x"}}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"since-5.8"}}, Includes: &mseccomp.Filter{MinKernel: k(5, 8)}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"since-6.19"}}, Includes: &mseccomp.Filter{MinKernel: k(6, 19)}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"before-6.18"}}, Excludes: &mseccomp.Filter{MinKernel: k(6, 18)}},
		{LinuxSyscall: specs.LinuxSyscall{Names: []string{"before-7.0"}}, Excludes: &mseccomp.Filter{MinKernel: k(7, 0)}},
		{Name: "single", LinuxSyscall: specs.LinuxSyscall{}},
	}}
	names := func(sel selection) string {
		rules, err := selectRules(p, sel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rules {
			out = append(out, r.Names...)
		}
		return strings.Join(out, " ")
	}
	if got, want := names(testSel()), "always not-admin not-admin-or-boot amd64-only not-s390 since-5.8 before-7.0 single"; got != want {
		t.Errorf("default caps: %s\nwant %s", got, want)
	}
	if got, want := names(testSel("CAP_SYS_ADMIN")), "always admin amd64-only not-s390 since-5.8 before-7.0 single"; got != want {
		t.Errorf("with CAP_SYS_ADMIN: %s\nwant %s", got, want)
	}
	if got, want := names(testSel("CAP_SYS_ADMIN", "CAP_SYS_BOOT")), "always admin admin-and-boot amd64-only not-s390 since-5.8 before-7.0 single"; got != want {
		t.Errorf("with CAP_SYS_ADMIN and CAP_SYS_BOOT: %s\nwant %s", got, want)
	}
	old := selection{arch: "arm64", kernel: kernelVersion{5, 4}, caps: DefaultCapabilities()}
	if got, want := names(old), "always not-admin not-admin-or-boot arm-only not-s390 before-6.18 before-7.0 single"; got != want {
		t.Errorf("arm64 on 5.4: %s\nwant %s", got, want)
	}

	both := &mseccomp.Seccomp{Syscalls: []*mseccomp.Syscall{{Name: "a", LinuxSyscall: specs.LinuxSyscall{Names: []string{"b"}}}}}
	if _, err := selectRules(both, testSel()); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("name and names: %v", err)
	}
	arches := &mseccomp.Seccomp{LinuxSeccomp: specs.LinuxSeccomp{Architectures: []specs.Arch{specs.ArchX86_64}},
		ArchMap: []mseccomp.Architecture{{Arch: specs.ArchX86_64}}}
	if _, err := selectRules(arches, testSel()); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("architectures and archMap: %v", err)
	}
}

func TestArgCondition(t *testing.T) {
	for _, tc := range []struct {
		name      string
		arg       specs.LinuxSeccompArg
		want      string
		satisfied bool
	}{
		{"eq", specs.LinuxSeccompArg{Index: 1, Value: 5, Op: specs.OpEqualTo}, "[{1 Equal 5}]", true},
		{"masked zero", specs.LinuxSeccompArg{Index: 0, Value: 0x30, ValueTwo: 0, Op: specs.OpMaskedEqual}, "[{0 BitsNotSet 48}]", true},
		{"masked all", specs.LinuxSeccompArg{Index: 0, Value: 0x30, ValueTwo: 0x30, Op: specs.OpMaskedEqual}, "[{0 BitsSet 16} {0 BitsSet 32}]", true},
		{"masked some", specs.LinuxSeccompArg{Index: 0, Value: 0x31, ValueTwo: 0x10, Op: specs.OpMaskedEqual}, "[{0 BitsNotSet 33} {0 BitsSet 16}]", true},
		{"masked empty mask", specs.LinuxSeccompArg{Index: 0, Value: 0, ValueTwo: 0, Op: specs.OpMaskedEqual}, "[]", true},
		{"masked impossible", specs.LinuxSeccompArg{Index: 0, Value: 0x1, ValueTwo: 0x2, Op: specs.OpMaskedEqual}, "[]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok, err := argCondition(tc.arg)
			if err != nil || ok != tc.satisfied || fmt.Sprint(c) != tc.want {
				t.Errorf("got %v %v %v, want %s %v", c, ok, err, tc.want, tc.satisfied)
			}
		})
	}
	if _, _, err := argCondition(specs.LinuxSeccompArg{Op: "SCMP_CMP_WHATEVER"}); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("unknown op: %v", err)
	}
	if _, _, err := argConditions([]specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("index 6: %v", err)
	}
}

// TestCustomProfiles compiles small profiles in docker's JSON format and runs them.
func TestCustomProfiles(t *testing.T) {
	info := amd64(t)
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	build := func(t *testing.T, js string) (*Filter, error) {
		t.Helper()
		p, err := ParseProfile([]byte(js))
		if err != nil {
			return nil, err
		}
		return buildFilter(p, testSel(), info)
	}
	t.Run("allow by default, refuse mkdir with EACCES", func(t *testing.T) {
		f, err := build(t, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, f)
		eacces := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EACCES)
		if got := v.run(t, x86, nr(t, "mkdirat")); got != eacces {
			t.Errorf("mkdirat = %#x", got)
		}
		if got := v.run(t, x86, nr(t, "read")); got != wantAllow {
			t.Errorf("read = %#x", got)
		}
	})
	t.Run("ENOSYS by default", func(t *testing.T) {
		f, err := build(t, `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, f)
		if got := v.run(t, x86, nr(t, "write")); got != wantNOSYS {
			t.Errorf("write = %#x", got)
		}
		if got := v.run(t, uint32(unix.AUDIT_ARCH_I386), 4); got != wantNOSYS {
			t.Errorf("i386 = %#x", got)
		}
		if got := v.run(t, x86, nr(t, "read")); got != wantAllow {
			t.Errorf("read = %#x", got)
		}
	})
	t.Run("overlapping rules: the more restrictive wins", func(t *testing.T) {
		f, err := build(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
			{"names":["socket"],"action":"SCMP_ACT_ALLOW"},
			{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":40,"op":"SCMP_CMP_EQ"}]}]}`)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, f)
		if got := v.run(t, x86, nr(t, "socket"), 40); got != uint32(unix.SECCOMP_RET_ERRNO)|97 {
			t.Errorf("socket(40) = %#x", got)
		}
		if got := v.run(t, x86, nr(t, "socket"), 2); got != wantAllow {
			t.Errorf("socket(2) = %#x", got)
		}
	})
	t.Run("many condition sets are split into blocks", func(t *testing.T) {
		var rules []string
		for i := 0; i < 200; i++ {
			rules = append(rules, fmt.Sprintf(`{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":%d,"op":"SCMP_CMP_EQ"}]}`, 1000+i))
		}
		f, err := build(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[`+strings.Join(rules, ",")+`,{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, f)
		for _, tc := range []struct {
			call string
			arg  uint64
			want uint32
		}{{"ioctl", 1000, wantAllow}, {"ioctl", 1199, wantAllow}, {"ioctl", 1200, wantEPERM}, {"ioctl", 999, wantEPERM}, {"read", 0, wantAllow}} {
			if got := v.run(t, x86, nr(t, tc.call), 0, tc.arg); got != tc.want {
				t.Errorf("%s(0, %d) = %#x, want %#x", tc.call, tc.arg, got, tc.want)
			}
		}
	})
	t.Run("no default action and no rules is no filter", func(t *testing.T) {
		if f, err := build(t, `{}`); err != nil || f != nil {
			t.Errorf("got %v, %v", f, err)
		}
	})
	for _, bad := range []struct{ name, js string }{
		{"not JSON", `{"defaultAction":`},
		{"trailing data", `{"defaultAction":"SCMP_ACT_ERRNO"} {}`},
		{"unknown action", `{"defaultAction":"SCMP_ACT_MAYBE"}`},
		{"notify", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}`},
		{"listener", `{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/agent.sock"}`},
		{"errno on allow", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":1}]}`},
		{"errno too large", `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}`},
		{"bad op", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_SOMETIMES"}]}]}`},
		{"bad index", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`},
		{"unknown flag", `{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}`},
	} {
		t.Run("refused: "+bad.name, func(t *testing.T) {
			if _, err := build(t, bad.js); !errors.Is(err, ErrInvalidProfile) {
				t.Errorf("got %v, want ErrInvalidProfile", err)
			}
		})
	}
}

func BenchmarkBuildFilter(b *testing.B) {
	caps := DefaultCapabilities()
	for b.Loop() {
		if _, err := BuildFilter("", caps); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompare runs every operation's code on values around the boundaries of both 32-bit
// words and checks it against Go's 64-bit comparison.
func TestCompare(t *testing.T) {
	values := []uint64{0, 1, 2, 0xfffffffe, 0xffffffff, 1 << 32, 1<<32 | 1, 2<<32 | 0xffffffff, 0x80000000_00000000, ^uint64(0) - 1, ^uint64(0)}
	ops := map[operation]func(a, v uint64) bool{
		opEqual:          func(a, v uint64) bool { return a == v },
		opNotEqual:       func(a, v uint64) bool { return a != v },
		opLessThan:       func(a, v uint64) bool { return a < v },
		opLessOrEqual:    func(a, v uint64) bool { return a <= v },
		opGreaterThan:    func(a, v uint64) bool { return a > v },
		opGreaterOrEqual: func(a, v uint64) bool { return a >= v },
		opBitsSet:        func(a, v uint64) bool { return a&v != 0 },
		opBitsNotSet:     func(a, v uint64) bool { return a&v == 0 },
	}
	const call = 7
	for op, want := range ops {
		for _, v := range values {
			for _, argIdx := range []uint32{0, 3, 5} {
				insns, err := conditionalBlock(call, []conditions{{{Arg: argIdx, Op: op, Value: v}}}, retAllow)
				if err != nil {
					t.Fatal(err)
				}
				// The block falls through to "return EPERM" when it does not match.
				insns = append([]bpf.Instruction{reloadNr}, append(insns, bpf.RetConstant{Val: wantEPERM})...)
				raw, err := bpf.Assemble(insns)
				if err != nil {
					t.Fatal(err)
				}
				f := &Filter{}
				for _, r := range raw {
					f.Program = binary.NativeEndian.AppendUint16(f.Program, r.Op)
					f.Program = append(f.Program, r.Jt, r.Jf)
					f.Program = binary.NativeEndian.AppendUint32(f.Program, r.K)
				}
				vm := newVM(t, f)
				for _, a := range values {
					var args [6]uint64
					args[argIdx] = a
					args[(argIdx+1)%6] = ^a // a neighbour must not matter
					exp := wantEPERM
					if want(a, v) {
						exp = wantAllow
					}
					if got := vm.run(t, 0, call, args[:]...); got != exp {
						t.Errorf("arg%d=%#x %v %#x: got %#x, want %#x", argIdx, a, op, v, got, exp)
					}
					if got := vm.run(t, 0, call+1, args[:]...); got != wantEPERM {
						t.Errorf("another call with arg%d=%#x %v %#x: got %#x", argIdx, a, op, v, got)
					}
				}
			}
		}
	}
}

// TestSyscallTable checks the generated table against golang.org/x/sys's constants and its
// own consistency.
func TestSyscallTable(t *testing.T) {
	info, err := nativeArch()
	if err != nil {
		t.Skip(err)
	}
	names := strings.Fields(info.names)
	if len(names) < 250 || !slices.IsSorted(names) {
		t.Fatalf("%d names, sorted: %v", len(names), slices.IsSorted(names))
	}
	for i, n := range names {
		if i > 0 && names[i-1] == n {
			t.Errorf("%s twice", n)
		}
		if _, ok := info.syscall(n); !ok {
			t.Errorf("%s listed but not found", n)
		}
	}
	for name, want := range map[string]uintptr{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "openat": unix.SYS_OPENAT, "clone": unix.SYS_CLONE,
		"clone3": unix.SYS_CLONE3, "unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS, "mount": unix.SYS_MOUNT,
		"ptrace": unix.SYS_PTRACE, "personality": unix.SYS_PERSONALITY, "socket": unix.SYS_SOCKET,
		"io_uring_setup": unix.SYS_IO_URING_SETUP, "seccomp": unix.SYS_SECCOMP, "bpf": unix.SYS_BPF,
	} {
		if got, ok := info.syscall(name); !ok || uintptr(got) != want {
			t.Errorf("%s = %d %v, want %d", name, got, ok, want)
		}
	}
	if _, ok := info.syscall("no_such_call"); ok {
		t.Error("no_such_call found")
	}
}

// TestOneRuleTooLong: a single condition set longer than a jump reaches is refused as an
// invalid profile, not compiled wrongly.
func TestOneRuleTooLong(t *testing.T) {
	info := amd64(t)
	rule := func(args int) string {
		// Each comparison is of another argument, so they form one set (AND); 32 bits that
		// must be set make 32 single-bit tests of 4 instructions.
		var conds []string
		for i := 0; i < args; i++ {
			conds = append(conds, fmt.Sprintf(`{"index":%d,"value":%d,"valueTwo":%d,"op":"SCMP_CMP_MASKED_EQ"}`, i, uint32(0xffffffff), uint32(0xffffffff)))
		}
		return `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[` + strings.Join(conds, ",") + `]}]}`
	}
	for args, ok := range map[int]bool{1: true, 3: false} {
		p, err := ParseProfile([]byte(rule(args)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = buildFilter(p, testSel(), info)
		if ok && err != nil {
			t.Errorf("%d comparisons: %v", args, err)
		}
		if !ok && (!errors.Is(err, ErrInvalidProfile) || !errors.Is(err, errBlockTooLong)) {
			t.Errorf("%d comparisons: %v, want ErrInvalidProfile", args, err)
		}
	}
}
