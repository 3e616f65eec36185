//go:build !amd64 && !386 && !arm64 && !arm

package security

// This architecture has no system call table, so no precompiled default filter either (see
// precompiledDefault): BuildFilter compiles, and refuses for want of a table.

const (
	defaultFilterKernelMajor = 0
	defaultFilterKernelMinor = 0
	defaultFilterFlags       = 0
)

const defaultFilterProgram = ""
