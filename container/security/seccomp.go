package security

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"unsafe"

	mseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Values of --security-opt seccomp= besides a profile's path.
const (
	SeccompUnconfined = "unconfined" // no filter at all
	SeccompBuiltin    = "builtin"    // docker's default profile, as without the option

	// MaxProfileSize bounds a profile file read by ParseFlags.
	MaxProfileSize = 1 << 20
	// maxInstructions is the kernel's BPF_MAXINSNS.
	maxInstructions = 4096
	// maxErrno is the largest errno seccomp can return (MAX_ERRNO).
	maxErrno = 4095
	// sockFilterSize is sizeof(struct sock_filter).
	sockFilterSize = 8
)

// Filter is a compiled seccomp program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
type Filter struct {
	// Flags are SECCOMP_FILTER_FLAG_* bits for the seccomp(2) call.
	Flags uint32 `json:"flags,omitempty"`
	// Program is an array of struct sock_filter {u16 code; u8 jt; u8 jf; u32 k} in the
	// host's byte order.
	Program []byte `json:"program"`
}

// Len is the number of BPF instructions.
func (f *Filter) Len() int { return len(f.Program) / sockFilterSize }

// Instructions decodes Program.
func (f *Filter) Instructions() []unix.SockFilter {
	insns := make([]unix.SockFilter, f.Len())
	for i := range insns {
		b := f.Program[i*sockFilterSize:]
		insns[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:2]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:8]),
		}
	}
	return insns
}

// Load installs the filter on the calling thread. Without no_new_privs the thread needs
// CAP_SYS_ADMIN. The filter outlives execve.
func (f *Filter) Load() error {
	n := f.Len()
	if n == 0 || n > maxInstructions || len(f.Program)%sockFilterSize != 0 {
		return fmt.Errorf("seccomp: program of %d bytes is not 1..%d instructions", len(f.Program), maxInstructions)
	}
	insns := f.Instructions()
	prog := unix.SockFprog{Len: uint16(n), Filter: &insns[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.Flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(insns)
	if errno != 0 {
		return fmt.Errorf("load seccomp filter: %w", errno)
	}
	return nil
}

// kernelVersion is the "major.minor" of a kernel, as profiles' minKernel compares it.
type kernelVersion struct{ major, minor uint64 }

func (k kernelVersion) atLeast(m *mseccomp.KernelVersion) bool {
	return k.major > m.Kernel || (k.major == m.Kernel && k.minor >= m.Major)
}

// selection is what decides which of a profile's rules apply to a container.
type selection struct {
	arch   string        // moby's name of the native architecture: "amd64", "arm64"...
	kernel kernelVersion // the running kernel
	caps   []string      // the container's bounding set, canonical names
}

// mobyArch maps GOARCH to the architecture names profiles use in includes/excludes.
func mobyArch(goarch string) string {
	switch goarch {
	case "386":
		return "x86"
	case "loong64":
		return "loongarch64"
	case "mipsle":
		return "mipsel"
	case "mips64le":
		return "mipsel64"
	}
	return goarch
}

// hostSelection describes this machine for a container with the given bounding set.
func hostSelection(caps []string) (selection, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return selection{}, fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var k kernelVersion
	if _, err := fmt.Sscanf(release, "%d.%d", &k.major, &k.minor); err != nil {
		return selection{}, fmt.Errorf("kernel release %q: %w", release, err)
	}
	return selection{arch: mobyArch(runtime.GOARCH), kernel: k, caps: caps}, nil
}

// selectRules returns the profile's rules that apply, with docker's rules: a rule is skipped
// if its excludes match (the architecture is listed, any listed capability is in the
// bounding set, or the kernel is at least minKernel), or if its includes do not (the
// architecture is not listed, a listed capability is missing, or the kernel is older).
func selectRules(p *mseccomp.Seccomp, s selection) ([]specs.LinuxSyscall, error) {
	if len(p.Architectures) != 0 && len(p.ArchMap) != 0 {
		return nil, fmt.Errorf("%w: both 'architectures' and 'archMap' are set", ErrInvalidProfile)
	}
	if len(p.LinuxSeccomp.Syscalls) != 0 {
		return nil, fmt.Errorf("%w: LinuxSeccomp.Syscalls must be empty", ErrInvalidProfile)
	}
	var out []specs.LinuxSyscall
	for i, call := range p.Syscalls {
		if call == nil {
			return nil, fmt.Errorf("%w: syscalls[%d] is null", ErrInvalidProfile, i)
		}
		rule := call.LinuxSyscall
		if call.Name != "" {
			if len(call.Names) != 0 {
				return nil, fmt.Errorf("%w: syscalls[%d] has both 'name' and 'names'", ErrInvalidProfile, i)
			}
			rule.Names = []string{call.Name}
		}
		if ex := call.Excludes; ex != nil {
			if slices.Contains(ex.Arches, s.arch) ||
				slices.ContainsFunc(ex.Caps, func(c string) bool { return slices.Contains(s.caps, c) }) ||
				(ex.MinKernel != nil && s.kernel.atLeast(ex.MinKernel)) {
				continue
			}
		}
		if in := call.Includes; in != nil {
			if (len(in.Arches) > 0 && !slices.Contains(in.Arches, s.arch)) ||
				slices.ContainsFunc(in.Caps, func(c string) bool { return !slices.Contains(s.caps, c) }) ||
				(in.MinKernel != nil && !s.kernel.atLeast(in.MinKernel)) {
				continue
			}
		}
		out = append(out, rule)
	}
	return out, nil
}

// parseAction turns a profile action and its errno into seccomp's return value.
func parseAction(a specs.LinuxSeccompAction, errnoRet *uint) (retAction, error) {
	withData := func(base retAction) (retAction, error) {
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > maxErrno {
			return 0, fmt.Errorf("%w: errnoRet %d is larger than %d", ErrInvalidProfile, e, maxErrno)
		}
		return base | retAction(e), nil
	}
	if errnoRet != nil && a != specs.ActErrno && a != specs.ActTrace {
		return 0, fmt.Errorf("%w: errnoRet is only valid with %s and %s, not %s", ErrInvalidProfile, specs.ActErrno, specs.ActTrace, a)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return withData(retErrno)
	case specs.ActTrace:
		return withData(retTrace)
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("%w: %s needs a seccomp agent, which fockker does not have", ErrInvalidProfile, a)
	}
	return 0, fmt.Errorf("%w: unknown action %q", ErrInvalidProfile, a)
}

// severity orders actions the way the kernel ranks the results of several filters, most
// restrictive first. Rules are emitted in this order, so where two rules for one syscall
// with different actions could both match, the more restrictive one wins.
func severity(a retAction) int {
	switch uint32(a) & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_KILL_PROCESS:
		return 0
	case unix.SECCOMP_RET_KILL_THREAD:
		return 1
	case unix.SECCOMP_RET_TRAP:
		return 2
	case unix.SECCOMP_RET_ERRNO:
		return 3
	case unix.SECCOMP_RET_USER_NOTIF:
		return 4
	case unix.SECCOMP_RET_TRACE:
		return 5
	case unix.SECCOMP_RET_LOG:
		return 6
	}
	return 7 // allow
}

// argConditions turns one rule's argument comparisons into sets of conditions, any of which
// must hold entirely (OR of ANDs); nil means the rule is unconditional. Like runc, several
// comparisons of one argument make one set each; otherwise all comparisons form one set.
// never reports a rule that can match nothing (a masked comparison no value satisfies).
func argConditions(args []specs.LinuxSeccompArg) (sets []conditions, never bool, err error) {
	if len(args) == 0 {
		return nil, false, nil
	}
	perIndex := map[uint]int{}
	for _, a := range args {
		if a.Index > 5 {
			return nil, false, fmt.Errorf("%w: argument index %d (must be 0-5)", ErrInvalidProfile, a.Index)
		}
		perIndex[a.Index]++
	}
	conds := make([]conditions, len(args))
	for i, a := range args {
		c, ok, err := argCondition(a)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			conds[i] = nil // matches no value
			continue
		}
		conds[i] = c
	}
	split := false
	for _, n := range perIndex {
		split = split || n > 1
	}
	if split {
		for i := range args {
			if conds[i] == nil {
				continue // this alternative never matches
			}
			if len(conds[i]) == 0 {
				return nil, false, nil // always matches: the rule is unconditional
			}
			sets = append(sets, conds[i])
		}
		return sets, len(sets) == 0, nil
	}
	var all conditions
	for i := range args {
		if conds[i] == nil {
			return nil, true, nil
		}
		all = append(all, conds[i]...)
	}
	if len(all) == 0 {
		return nil, false, nil
	}
	return []conditions{all}, false, nil
}

// argCondition expresses one comparison with the compiler's operations. ok is false when no
// value can satisfy it; an empty result means every value does. MASKED_EQ, (arg & Value) ==
// ValueTwo, becomes "none of the bits of Value that ValueTwo lacks" plus "each bit of
// ValueTwo", which is exact.
func argCondition(a specs.LinuxSeccompArg) (conditions, bool, error) {
	idx := uint32(a.Index)
	one := func(op operation, v uint64) (conditions, bool, error) {
		return conditions{{Arg: idx, Op: op, Value: v}}, true, nil
	}
	switch a.Op {
	case specs.OpNotEqual:
		return one(opNotEqual, a.Value)
	case specs.OpLessThan:
		return one(opLessThan, a.Value)
	case specs.OpLessEqual:
		return one(opLessOrEqual, a.Value)
	case specs.OpEqualTo:
		return one(opEqual, a.Value)
	case specs.OpGreaterEqual:
		return one(opGreaterOrEqual, a.Value)
	case specs.OpGreaterThan:
		return one(opGreaterThan, a.Value)
	case specs.OpMaskedEqual:
		mask, want := a.Value, a.ValueTwo
		if want&^mask != 0 {
			return nil, false, nil
		}
		out := conditions{}
		if clear := mask &^ want; clear != 0 {
			out = append(out, condition{Arg: idx, Op: opBitsNotSet, Value: clear})
		}
		for m := want; m != 0; m &= m - 1 {
			bit := uint64(1) << bits.TrailingZeros64(m)
			out = append(out, condition{Arg: idx, Op: opBitsSet, Value: bit})
		}
		return out, true, nil
	}
	return nil, false, fmt.Errorf("%w: unknown comparison %q", ErrInvalidProfile, a.Op)
}

// ruleSet collects, per action, which syscalls match unconditionally and which only under
// conditions, merging rules the way libseccomp ORs rules with one action.
type ruleSet struct {
	order  []retAction
	groups map[retAction]*ruleGroup
}

type ruleGroup struct {
	names      []string // in first-seen order
	uncond     map[string]bool
	conditions map[string][]conditions
}

func (r *ruleSet) add(act retAction, name string, sets []conditions) {
	if r.groups == nil {
		r.groups = map[retAction]*ruleGroup{}
	}
	g := r.groups[act]
	if g == nil {
		g = &ruleGroup{uncond: map[string]bool{}, conditions: map[string][]conditions{}}
		r.groups[act] = g
		r.order = append(r.order, act)
	}
	if !g.uncond[name] && g.conditions[name] == nil {
		g.names = append(g.names, name)
	}
	if sets == nil {
		g.uncond[name] = true
		delete(g.conditions, name)
		return
	}
	if !g.uncond[name] {
		g.conditions[name] = append(g.conditions[name], sets...)
	}
}

// sortedActions returns the actions most restrictive first (ties by value, so the output is
// stable).
func (r *ruleSet) sortedActions() []retAction {
	order := slices.Clone(r.order)
	slices.SortStableFunc(order, func(a, b retAction) int {
		if sa, sb := severity(a), severity(b); sa != sb {
			return sa - sb
		}
		return int(int64(a) - int64(b))
	})
	return order
}

// filterFlags turns a profile's flags into SECCOMP_FILTER_FLAG_* bits.
func filterFlags(flags []specs.LinuxSeccompFlag) (uint32, error) {
	var out uint32
	for _, f := range flags {
		switch f {
		case "SECCOMP_FILTER_FLAG_TSYNC":
			// Harmless: the filter is loaded by the thread that then calls execve.
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		default:
			return 0, fmt.Errorf("%w: unsupported flag %q", ErrInvalidProfile, f)
		}
	}
	return out, nil
}

// ParseProfile decodes a profile in docker's JSON format.
func ParseProfile(data []byte) (*mseccomp.Seccomp, error) {
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrInvalidProfile, len(data), MaxProfileSize)
	}
	var p mseccomp.Seccomp
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidProfile)
	}
	return &p, nil
}

// BuildFilter compiles a profile for a container whose bounding set is caps: profile is a
// profile's JSON, or "" for docker's default profile (moby/profiles). It returns nil, nil for
// a profile with neither a default action nor rules, which docker takes as no filter. Docker's
// default profile for its default capabilities is not compiled but taken as precompiled for
// this architecture (see precompiledDefault), unless the kernel is too old for that program.
func BuildFilter(profile string, caps []string) (*Filter, error) {
	var p *mseccomp.Seccomp
	if profile != "" {
		var err error
		if p, err = ParseProfile([]byte(profile)); err != nil {
			return nil, err
		}
	}
	return compileFor(p, caps)
}

// compileFor compiles p, or docker's default profile if p is nil, for this machine and a
// container whose bounding set is caps.
func compileFor(p *mseccomp.Seccomp, caps []string) (*Filter, error) {
	sel, err := hostSelection(caps)
	if err != nil {
		return nil, err
	}
	if p == nil {
		if f := precompiledDefault(sel); f != nil {
			return f, nil
		}
		p = mseccomp.DefaultProfile()
	}
	info, err := nativeArch()
	if err != nil {
		return nil, err
	}
	return buildFilter(p, sel, info)
}

// precompiledDefault returns docker's default filter for sel as generated by go generate
// (seccomp_default_<arch>.go, written and checked by TestGeneratedDefaultFilters), or nil
// if there is none for sel: the program of docker's default profile depends only on the
// architecture, the capability set and, through minKernel rules, the kernel. It was
// compiled for DefaultCapabilities() and a kernel at least as new as the newest minKernel
// of the profile (4.8 when this was written: ptrace is allowed from 4.8 on), for which every
// such rule is decided as on any newer kernel. fockker's README says it needs Linux
// 5.7 or later (openat2, CLONE_INTO_CGROUP), but nothing checks that before a container is
// built, so the kernel is compared here: on an older one the profile is compiled as usual.
func precompiledDefault(sel selection) *Filter {
	if defaultFilterProgram == "" || !sel.kernel.atLeast(&mseccomp.KernelVersion{Kernel: defaultFilterKernelMajor, Major: defaultFilterKernelMinor}) {
		return nil
	}
	def := DefaultCapabilities()
	if len(sel.caps) != len(def) || slices.ContainsFunc(def, func(c string) bool { return !slices.Contains(sel.caps, c) }) {
		return nil // not the same set (in any order): with as many names, one is missing
	}
	return &Filter{Flags: defaultFilterFlags, Program: []byte(defaultFilterProgram)}
}

// buildFilter compiles p for the native architecture info. Only that architecture's calls
// are checked: any other (a 32-bit i386 program on x86_64) gets the default action for every
// call and x32 calls fail with ENOSYS (see assemble). Syscall names the architecture does
// not have are ignored, as libseccomp ignores them.
func buildFilter(p *mseccomp.Seccomp, sel selection, info *archInfo) (*Filter, error) {
	if p.DefaultAction == "" && len(p.Syscalls) == 0 {
		return nil, nil
	}
	if p.ListenerPath != "" {
		return nil, fmt.Errorf("%w: listenerPath needs a seccomp agent, which fockker does not have", ErrInvalidProfile)
	}
	def, err := parseAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	flags, err := filterFlags(p.Flags)
	if err != nil {
		return nil, err
	}
	rules, err := selectRules(p, sel)
	if err != nil {
		return nil, err
	}
	var set ruleSet
	for i, rule := range rules {
		act, err := parseAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		if act == def {
			continue // libseccomp refuses these; runc skips them
		}
		conds, never, err := argConditions(rule.Args)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		if never {
			continue
		}
		for _, name := range rule.Names {
			if _, ok := info.syscall(name); !ok {
				continue
			}
			set.add(act, name, conds)
		}
	}
	insns, err := assemble(&set, def, info)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	if len(raw) > maxInstructions {
		return nil, fmt.Errorf("%w: %d instructions exceed the kernel's limit of %d", ErrInvalidProfile, len(raw), maxInstructions)
	}
	f := &Filter{Flags: flags, Program: make([]byte, 0, len(raw)*sockFilterSize)}
	for _, r := range raw {
		f.Program = binary.NativeEndian.AppendUint16(f.Program, r.Op)
		f.Program = append(f.Program, r.Jt, r.Jf)
		f.Program = binary.NativeEndian.AppendUint32(f.Program, r.K)
	}
	return f, nil
}

//go:generate go run seccomp_mktables.go
//go:generate go test -count=1 -run TestGeneratedDefaultFilters . -args -write-default-filters

// archInfo is what the compiler needs of an architecture.
type archInfo struct {
	auditArch uint32                           // seccomp_data.arch of its native calls
	syscall   func(name string) (uint32, bool) // a call's number
	names     string                           // its calls, space-separated
}

// nativeArch describes the architecture fockker was built for, from its table in
// seccomp_tables.go (named by seccomp_syscalls_<arch>.go).
func nativeArch() (*archInfo, error) {
	if nativeAuditArch == 0 {
		return nil, fmt.Errorf("seccomp: no system call table for %s", runtime.GOARCH)
	}
	return &archInfo{auditArch: nativeAuditArch, syscall: nativeSyscall, names: nativeSyscallNames}, nil
}

// reloadNr is "A = seccomp_data.nr".
var reloadNr = bpf.LoadAbsolute{Off: offNr, Size: 4}

// assemble lays out the filter:
//
//	ld arch; if not the native arch: return the default action
//	ld nr; on x86_64: if an x32 call: return ENOSYS
//	a binary search on the syscall number over the ranges of numbers that end the same way
//	(see searchTree), each leaf one range:
//	    a number no rule names, or that an action takes unconditionally: return it
//	    a number with conditional rules: for each action, most restrictive first, its
//	        condition blocks, then ld nr again; then the action that takes the number
//	        unconditionally, if any, or the default one
//
// A linear list of comparisons, one per syscall, costs every call of the container up to
// several hundred instructions, and the kernel runs the filter for each syscall number when
// it is loaded (to cache the calls it always allows): ~2 ms for a list this long. The search
// takes about ten comparisons.
//
// The syscall number is loaded again after every block that compared arguments: were the
// argument left in the accumulator, a later comparison would be made with it.
func assemble(set *ruleSet, def retAction, info *archInfo) ([]bpf.Instruction, error) {
	insns := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: info.auditArch, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(def)},
		reloadNr,
	}
	if info.auditArch == unix.AUDIT_ARCH_X86_64 {
		insns = append(insns,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(retErrno) | uint32(unix.ENOSYS)})
	}
	// What each named syscall number does, actions in order of severity.
	calls := map[uint32]*callRule{}
	for _, act := range set.sortedActions() {
		g := set.groups[act]
		for _, name := range g.names {
			num, _ := info.syscall(name)
			c := calls[num]
			if c == nil {
				c = &callRule{}
				calls[num] = c
			}
			if c.final {
				continue // a more restrictive action takes it whatever the arguments
			}
			if g.uncond[name] {
				c.ret, c.final = act, true
				continue
			}
			blocks, err := conditionalBlocks(num, g.conditions[name], act)
			if err != nil {
				return nil, fmt.Errorf("syscall %s: %w", name, err)
			}
			for _, block := range blocks {
				c.code = append(c.code, block...)
				c.code = append(c.code, reloadNr)
			}
		}
	}
	nums := make([]uint32, 0, len(calls))
	for num, c := range calls {
		if !c.final {
			c.ret = def
		}
		nums = append(nums, num)
	}
	slices.Sort(nums)
	// The ranges that cover every 32-bit number, in order.
	var ranges []numRange
	add := func(r numRange) {
		if n := len(ranges); n > 0 && r.code == nil && ranges[n-1].code == nil && ranges[n-1].ret == r.ret {
			return // the previous range goes on
		}
		ranges = append(ranges, r)
	}
	next, wrapped := uint32(0), false
	for _, num := range nums {
		if num > next {
			add(numRange{lo: next, ret: def})
		}
		add(numRange{lo: num, ret: calls[num].ret, code: calls[num].code})
		next = num + 1
		wrapped = next == 0
	}
	if !wrapped {
		add(numRange{lo: next, ret: def})
	}
	return append(insns, searchTree(ranges)...), nil
}

// callRule is what the filter does with one syscall number: its condition blocks, then ret.
type callRule struct {
	code  []bpf.Instruction
	ret   retAction
	final bool // an action takes it unconditionally
}

// numRange is the numbers from lo up to the next range's lo, which all end the same way.
type numRange struct {
	lo   uint32
	code []bpf.Instruction // conditions (for a range of one number)
	ret  retAction
}

// searchTree lays out a binary search of the syscall number (in the accumulator) over
// ranges, in order and covering every number from ranges[0].lo (0) up: each step compares
// with the first number of the upper half and jumps over the lower half's code, with an
// unconditional jump when that is longer than a conditional jump can be (255).
func searchTree(ranges []numRange) []bpf.Instruction {
	if len(ranges) == 1 {
		return append(slices.Clone(ranges[0].code), bpf.RetConstant{Val: uint32(ranges[0].ret)})
	}
	mid := len(ranges) / 2
	lower, upper := searchTree(ranges[:mid]), searchTree(ranges[mid:])
	var out []bpf.Instruction
	if len(lower) <= 255 {
		out = append(out, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: ranges[mid].lo, SkipTrue: uint8(len(lower))})
	} else {
		out = append(out,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: ranges[mid].lo, SkipFalse: 1},
			bpf.Jump{Skip: uint32(len(lower))})
	}
	out = append(out, lower...)
	return append(out, upper...)
}

// conditionalBlocks assembles the condition sets of one syscall into as few blocks as fit:
// a block whose jumps would be too long is split in two.
func conditionalBlocks(num uint32, sets []conditions, act retAction) ([][]bpf.Instruction, error) {
	block, err := conditionalBlock(num, sets, act)
	if err == nil {
		return [][]bpf.Instruction{block}, nil
	}
	if !errors.Is(err, errBlockTooLong) {
		return nil, err
	}
	if len(sets) < 2 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	half := len(sets) / 2
	first, err := conditionalBlocks(num, sets[:half], act)
	if err != nil {
		return nil, err
	}
	rest, err := conditionalBlocks(num, sets[half:], act)
	if err != nil {
		return nil, err
	}
	return append(first, rest...), nil
}

// errBlockTooLong: a block's jumps would reach further than a conditional jump can. Made
// with errors.New rather than wrapping ErrInvalidProfile, so that no process formats it at
// start-up; it is wrapped where it leaves the compiler.
var errBlockTooLong = errors.New("a rule's conditions need a jump longer than 255 BPF instructions")
