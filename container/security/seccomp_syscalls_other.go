//go:build !amd64 && !386 && !arm64 && !arm

package security

// This architecture has no system call table (see seccomp_mktables.go): BuildFilter refuses
// to build a filter rather than build one that misses calls.

const nativeAuditArch = 0

const nativeSyscallNames = ""

func nativeSyscall(string) (uint32, bool) { return 0, false }
