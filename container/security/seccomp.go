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

	"github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
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

// action turns a profile action and its errno into seccomp's return value.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (seccomp.Action, error) {
	withData := func(base seccomp.Action) (seccomp.Action, error) {
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > maxErrno {
			return 0, fmt.Errorf("%w: errnoRet %d is larger than %d", ErrInvalidProfile, e, maxErrno)
		}
		return base | seccomp.Action(e), nil
	}
	if errnoRet != nil && a != specs.ActErrno && a != specs.ActTrace {
		return 0, fmt.Errorf("%w: errnoRet is only valid with %s and %s, not %s", ErrInvalidProfile, specs.ActErrno, specs.ActTrace, a)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActErrno:
		return withData(seccomp.ActionErrno)
	case specs.ActTrace:
		return withData(seccomp.ActionTrace)
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("%w: %s needs a seccomp agent, which fockker does not have", ErrInvalidProfile, a)
	}
	return 0, fmt.Errorf("%w: unknown action %q", ErrInvalidProfile, a)
}

// severity orders actions the way the kernel ranks the results of several filters, most
// restrictive first. Rules are emitted in this order, so where two rules for one syscall
// with different actions could both match, the more restrictive one wins.
func severity(a seccomp.Action) int {
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
func argConditions(args []specs.LinuxSeccompArg) (sets []seccomp.ArgumentConditions, never bool, err error) {
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
	conds := make([]seccomp.ArgumentConditions, len(args))
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
	var all seccomp.ArgumentConditions
	for i := range args {
		if conds[i] == nil {
			return nil, true, nil
		}
		all = append(all, conds[i]...)
	}
	if len(all) == 0 {
		return nil, false, nil
	}
	return []seccomp.ArgumentConditions{all}, false, nil
}

// argCondition expresses one comparison with the assembler's operations. ok is false when no
// value can satisfy it; an empty result means every value does. MASKED_EQ, (arg & Value) ==
// ValueTwo, becomes "none of the bits of Value that ValueTwo lacks" plus "each bit of
// ValueTwo", which is exact.
func argCondition(a specs.LinuxSeccompArg) (seccomp.ArgumentConditions, bool, error) {
	idx := uint32(a.Index)
	one := func(op seccomp.Operation, v uint64) (seccomp.ArgumentConditions, bool, error) {
		return seccomp.ArgumentConditions{{Argument: idx, Operation: op, Value: v}}, true, nil
	}
	switch a.Op {
	case specs.OpNotEqual:
		return one(seccomp.NotEqual, a.Value)
	case specs.OpLessThan:
		return one(seccomp.LessThan, a.Value)
	case specs.OpLessEqual:
		return one(seccomp.LessOrEqual, a.Value)
	case specs.OpEqualTo:
		return one(seccomp.Equal, a.Value)
	case specs.OpGreaterEqual:
		return one(seccomp.GreaterOrEqual, a.Value)
	case specs.OpGreaterThan:
		return one(seccomp.GreaterThan, a.Value)
	case specs.OpMaskedEqual:
		mask, want := a.Value, a.ValueTwo
		if want&^mask != 0 {
			return nil, false, nil
		}
		out := seccomp.ArgumentConditions{}
		if clear := mask &^ want; clear != 0 {
			out = append(out, seccomp.Condition{Argument: idx, Operation: seccomp.BitsNotSet, Value: clear})
		}
		for m := want; m != 0; m &= m - 1 {
			bit := uint64(1) << bits.TrailingZeros64(m)
			out = append(out, seccomp.Condition{Argument: idx, Operation: seccomp.BitsSet, Value: bit})
		}
		return out, true, nil
	}
	return nil, false, fmt.Errorf("%w: unknown comparison %q", ErrInvalidProfile, a.Op)
}

// ruleSet collects, per action, which syscalls match unconditionally and which only under
// conditions, merging rules the way libseccomp ORs rules with one action.
type ruleSet struct {
	order  []seccomp.Action
	groups map[seccomp.Action]*ruleGroup
}

type ruleGroup struct {
	names      []string // in first-seen order
	uncond     map[string]bool
	conditions map[string][]seccomp.ArgumentConditions
}

func (r *ruleSet) add(act seccomp.Action, name string, sets []seccomp.ArgumentConditions) {
	if r.groups == nil {
		r.groups = map[seccomp.Action]*ruleGroup{}
	}
	g := r.groups[act]
	if g == nil {
		g = &ruleGroup{uncond: map[string]bool{}, conditions: map[string][]seccomp.ArgumentConditions{}}
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
func (r *ruleSet) sortedActions() []seccomp.Action {
	order := slices.Clone(r.order)
	slices.SortStableFunc(order, func(a, b seccomp.Action) int {
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
// a profile with neither a default action nor rules, which docker takes as no filter.
func BuildFilter(profile string, caps []string) (*Filter, error) {
	var p *mseccomp.Seccomp
	if profile == "" {
		p = mseccomp.DefaultProfile()
	} else {
		var err error
		if p, err = ParseProfile([]byte(profile)); err != nil {
			return nil, err
		}
	}
	sel, err := hostSelection(caps)
	if err != nil {
		return nil, err
	}
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return buildFilter(p, sel, info)
}

// buildFilter compiles p for the native architecture info. Only that architecture's calls
// are checked: any other (a 32-bit i386 program on x86_64) gets the default action for every
// call and x32 calls fail with ENOSYS, as the assembler arranges. Syscall names the
// architecture does not have are ignored, as libseccomp ignores them.
func buildFilter(p *mseccomp.Seccomp, sel selection, info *arch.Info) (*Filter, error) {
	if p.DefaultAction == "" && len(p.Syscalls) == 0 {
		return nil, nil
	}
	if p.ListenerPath != "" {
		return nil, fmt.Errorf("%w: listenerPath needs a seccomp agent, which fockker does not have", ErrInvalidProfile)
	}
	def, err := action(p.DefaultAction, p.DefaultErrnoRet)
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
		act, err := action(rule.Action, rule.ErrnoRet)
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
			if _, ok := info.SyscallNames[name]; !ok {
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

// reloadNr is "A = seccomp_data.nr".
var reloadNr = bpf.LoadAbsolute{Off: 0, Size: 4}

// assemble lays out the filter:
//
//	ld arch; if not the native arch: return the default action
//	ld nr; on x86_64: if an x32 call: return ENOSYS
//	for each action, most restrictive first:
//	    the syscalls it takes unconditionally
//	    each syscall it takes under conditions, then ld nr again
//	return the default action
//
// The blocks are assembled with the assembler's Program and SyscallWithConditions, each block
// on its own, and joined: a failed comparison jumps to the end of its block, the start of the
// next. Its Policy.Assemble is not used because it puts every block in one program without
// reloading the syscall number after argument checks: when a rule's conditions fail, the
// argument left in the accumulator is then compared with the syscall numbers of the later
// rules, so socket(AF_VSOCK, ...) would pass as sendfile (40), and a high word chosen by the
// caller could make personality() pass as whatever syscall has that number.
func assemble(set *ruleSet, def seccomp.Action, info *arch.Info) ([]bpf.Instruction, error) {
	insns := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(def)},
		reloadNr,
	}
	if info.ID == arch.X86_64.ID {
		insns = append(insns,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1},
			bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)})
	}
	nr := func(name string) uint32 { return uint32(info.SyscallNames[name] | info.SeccompMask) }
	for _, act := range set.sortedActions() {
		g := set.groups[act]
		var uncond []seccomp.SyscallWithConditions
		for _, name := range g.names {
			if g.uncond[name] {
				uncond = append(uncond, seccomp.SyscallWithConditions{Num: nr(name)})
			}
		}
		// One instruction per syscall: chunks this size stay short-jump blocks.
		for len(uncond) > 0 {
			n := min(len(uncond), maxBlock/2)
			block, err := assembleBlock(uncond[:n], act)
			if err != nil {
				return nil, err
			}
			insns = append(insns, block...)
			uncond = uncond[n:]
		}
		for _, name := range g.names {
			if g.uncond[name] {
				continue
			}
			blocks, err := conditionalBlocks(nr(name), g.conditions[name], act)
			if err != nil {
				return nil, fmt.Errorf("syscall %s: %w", name, err)
			}
			for _, block := range blocks {
				insns = append(insns, block...)
				insns = append(insns, reloadNr)
			}
		}
	}
	return append(insns, bpf.RetConstant{Val: uint32(def)}), nil
}

// maxBlock bounds the instructions of one block, so that no jump inside it is longer than a
// conditional jump can be (255): the assembler's handling of longer jumps is not used.
const maxBlock = 256

// conditionalBlocks assembles the condition sets of one syscall into as few blocks as fit.
func conditionalBlocks(num uint32, sets []seccomp.ArgumentConditions, act seccomp.Action) ([][]bpf.Instruction, error) {
	block, err := assembleBlock([]seccomp.SyscallWithConditions{{Num: num, Conditions: sets}}, act)
	if err == nil {
		return [][]bpf.Instruction{block}, nil
	}
	if !errors.Is(err, errBlockTooLong) || len(sets) < 2 {
		return nil, err
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

var errBlockTooLong = fmt.Errorf("%w: a rule's conditions need more than %d BPF instructions", ErrInvalidProfile, maxBlock)

// assembleBlock assembles syscalls that lead to act; when none matches, control falls
// through past the block's end.
func assembleBlock(syscalls []seccomp.SyscallWithConditions, act seccomp.Action) (insns []bpf.Instruction, err error) {
	if len(syscalls) == 0 {
		return nil, nil
	}
	defer func() {
		// The assembler panics on a jump past the end of a block longer than 255.
		if r := recover(); r != nil {
			insns, err = nil, errBlockTooLong
		}
	}()
	p := seccomp.NewProgram()
	match, end := p.NewLabel(), p.NewLabel()
	for i, s := range syscalls {
		s.Assemble(&p, i < len(syscalls)-1, match, end)
	}
	p.SetLabel(match)
	p.Ret(act)
	p.SetLabel(end)
	if insns, err = p.Assemble(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	// At most maxBlock instructions means no jump needed lengthening (the assembler's
	// lengthening is not trusted); a longer block is refused.
	if len(insns) > maxBlock {
		return nil, errBlockTooLong
	}
	return insns, nil
}
