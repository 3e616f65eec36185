package security

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// This file is the filter compiler's back end: seccomp return values, comparisons of 64-bit
// system call arguments, and blocks of classic BPF whose jumps are resolved from labels.

// retAction is a filter's return value: a SECCOMP_RET_* action with its data (an errno).
type retAction uint32

const (
	retKillProcess retAction = unix.SECCOMP_RET_KILL_PROCESS
	retKillThread  retAction = unix.SECCOMP_RET_KILL_THREAD
	retTrap        retAction = unix.SECCOMP_RET_TRAP
	retErrno       retAction = unix.SECCOMP_RET_ERRNO
	retTrace       retAction = unix.SECCOMP_RET_TRACE
	retLog         retAction = unix.SECCOMP_RET_LOG
	retAllow       retAction = unix.SECCOMP_RET_ALLOW
)

// operation is how a condition compares a 64-bit argument with its value, unsigned.
type operation int

const (
	opEqual          operation = iota // arg == value
	opNotEqual                        // arg != value
	opLessThan                        // arg < value
	opLessOrEqual                     // arg <= value
	opGreaterThan                     // arg > value
	opGreaterOrEqual                  // arg >= value
	opBitsSet                         // arg & value != 0: any of the bits is set
	opBitsNotSet                      // arg & value == 0: none of the bits is set
)

func (o operation) String() string {
	switch o {
	case opEqual:
		return "Equal"
	case opNotEqual:
		return "NotEqual"
	case opLessThan:
		return "LessThan"
	case opLessOrEqual:
		return "LessOrEqual"
	case opGreaterThan:
		return "GreaterThan"
	case opGreaterOrEqual:
		return "GreaterOrEqual"
	case opBitsSet:
		return "BitsSet"
	case opBitsNotSet:
		return "BitsNotSet"
	}
	return fmt.Sprintf("operation(%d)", int(o))
}

// condition compares argument Arg (0-5) of a call.
type condition struct {
	Arg   uint32
	Op    operation
	Value uint64
}

// conditions hold together: all of them, or the rule does not apply.
type conditions []condition

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32SyscallBit marks the calls of the x32 ABI, which share AUDIT_ARCH_X86_64 with x86_64's.
const x32SyscallBit = 0x40000000

// argWords returns the offsets of the low and the high 32-bit word of argument i: the kernel
// stores the 64-bit arguments in the host's byte order.
func argWords(i uint32) (lo, hi uint32) {
	off := offArgs + 8*i
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return off, off + 4
	}
	return off + 4, off
}

// label names a position in a block; it is placed with set and may be jumped to before.
type label int

// block is a run of classic BPF that control leaves by a return or by falling through past its
// end. Conditional jumps name labels and are resolved by assemble; BPF's conditional jumps
// reach at most 255 instructions forward, which assemble checks.
type block struct {
	insns []bpf.Instruction
	jumps []jump
	at    []int // instruction index of each label, -1 until set
}

// jump is the conditional jump at insns[pc].
type jump struct {
	pc          int
	cond        bpf.JumpTest
	val         uint32
	ifTrue, els label
}

func (b *block) newLabel() label {
	b.at = append(b.at, -1)
	return label(len(b.at) - 1)
}

// set places l at the next instruction.
func (b *block) set(l label) { b.at[l] = len(b.insns) }

func (b *block) add(insn bpf.Instruction) { b.insns = append(b.insns, insn) }

// jumpIf adds "if A <cond> val goto ifTrue else goto els". cond is one of the tests classic
// BPF has (equal, greater, greater or equal, bits set).
func (b *block) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, els label) {
	b.jumps = append(b.jumps, jump{pc: len(b.insns), cond: cond, val: val, ifTrue: ifTrue, els: els})
	b.insns = append(b.insns, nil) // filled in by assemble
}

// loadArg loads the 32-bit word at offset off of seccomp_data into A.
func (b *block) loadArg(off uint32) { b.add(bpf.LoadAbsolute{Off: off, Size: 4}) }

// assemble resolves the jumps. A label may be placed at the block's end (falling out of it).
func (b *block) assemble() ([]bpf.Instruction, error) {
	for _, j := range b.jumps {
		skip := func(l label) (uint8, error) {
			to := b.at[l]
			if to < 0 {
				return 0, fmt.Errorf("seccomp: assemble: label %d never placed", l)
			}
			n := to - j.pc - 1
			if n < 0 {
				return 0, fmt.Errorf("seccomp: assemble: backward jump")
			}
			if n > 255 {
				return 0, errBlockTooLong
			}
			return uint8(n), nil
		}
		t, err := skip(j.ifTrue)
		if err != nil {
			return nil, err
		}
		f, err := skip(j.els)
		if err != nil {
			return nil, err
		}
		b.insns[j.pc] = bpf.JumpIf{Cond: j.cond, Val: j.val, SkipTrue: t, SkipFalse: f}
	}
	return b.insns, nil
}

// compare adds the test of one condition: control goes to pass if it holds, to fail if not.
// A 64-bit comparison is made on the high words first, then, where they are equal, on the
// low ones.
func (b *block) compare(c condition, pass, fail label) error {
	if c.Arg > 5 {
		return fmt.Errorf("%w: argument index %d (must be 0-5)", ErrInvalidProfile, c.Arg)
	}
	loOff, hiOff := argWords(c.Arg)
	hi, lo := uint32(c.Value>>32), uint32(c.Value)
	loLabel := b.newLabel()
	b.loadArg(hiOff)
	switch c.Op {
	case opEqual:
		b.jumpIf(bpf.JumpEqual, hi, loLabel, fail)
		b.set(loLabel)
		b.loadArg(loOff)
		b.jumpIf(bpf.JumpEqual, lo, pass, fail)
	case opNotEqual:
		b.jumpIf(bpf.JumpEqual, hi, loLabel, pass)
		b.set(loLabel)
		b.loadArg(loOff)
		b.jumpIf(bpf.JumpEqual, lo, fail, pass)
	case opGreaterThan, opGreaterOrEqual:
		eq := b.newLabel()
		b.jumpIf(bpf.JumpGreaterThan, hi, pass, eq)
		b.set(eq)
		b.jumpIf(bpf.JumpEqual, hi, loLabel, fail)
		b.set(loLabel)
		b.loadArg(loOff)
		if c.Op == opGreaterThan {
			b.jumpIf(bpf.JumpGreaterThan, lo, pass, fail)
		} else {
			b.jumpIf(bpf.JumpGreaterOrEqual, lo, pass, fail)
		}
	case opLessThan, opLessOrEqual:
		eq := b.newLabel()
		b.jumpIf(bpf.JumpGreaterOrEqual, hi, eq, pass)
		b.set(eq)
		b.jumpIf(bpf.JumpEqual, hi, loLabel, fail)
		b.set(loLabel)
		b.loadArg(loOff)
		if c.Op == opLessThan {
			b.jumpIf(bpf.JumpGreaterOrEqual, lo, fail, pass)
		} else {
			b.jumpIf(bpf.JumpGreaterThan, lo, fail, pass)
		}
	case opBitsSet:
		b.jumpIf(bpf.JumpBitsSet, hi, pass, loLabel)
		b.set(loLabel)
		b.loadArg(loOff)
		b.jumpIf(bpf.JumpBitsSet, lo, pass, fail)
	case opBitsNotSet:
		b.jumpIf(bpf.JumpBitsSet, hi, fail, loLabel)
		b.set(loLabel)
		b.loadArg(loOff)
		b.jumpIf(bpf.JumpBitsSet, lo, fail, pass)
	default:
		return fmt.Errorf("%w: unknown comparison %v", ErrInvalidProfile, c.Op)
	}
	return nil
}

// syscallBlock returns "if the call is nr: return act", falling through otherwise. The
// accumulator holds the call's number on entry.
func syscallBlock(nr uint32, act retAction) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1},
		bpf.RetConstant{Val: uint32(act)},
	}
}

// conditionalBlock returns "if the call is nr and all conditions of any of sets hold:
// return act", falling through otherwise, with an argument (not the call's number) left in
// the accumulator. The accumulator holds the call's number on entry.
func conditionalBlock(nr uint32, sets []conditions, act retAction) ([]bpf.Instruction, error) {
	for _, set := range sets {
		if len(set) == 0 {
			return syscallBlock(nr, act), nil // a set of no conditions always holds
		}
	}
	var b block
	match, end := b.newLabel(), b.newLabel()
	first := b.newLabel()
	b.jumpIf(bpf.JumpEqual, nr, first, end)
	b.set(first)
	for i, set := range sets {
		nextSet := end
		if i < len(sets)-1 {
			nextSet = b.newLabel()
		}
		for j, c := range set {
			pass := match
			if j < len(set)-1 {
				pass = b.newLabel()
			}
			if err := b.compare(c, pass, nextSet); err != nil {
				return nil, err
			}
			if pass != match {
				b.set(pass)
			}
		}
		if nextSet != end {
			b.set(nextSet)
		}
	}
	b.set(match)
	b.add(bpf.RetConstant{Val: uint32(act)})
	b.set(end)
	return b.assemble()
}
