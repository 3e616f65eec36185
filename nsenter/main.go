//go:build linux && cgo

// Package nsenter starts processes inside containers through C constructors
// that act before the Go runtime starts: a command joining a running
// container (exec), and a new container's first process (init).
//
// Every binary linking this package carries the constructors. They return at
// once unless a private variable is set: with _FOCKKER_NSENTER_FD one reads a
// Config from that fd, joins the container and never returns into Go (see
// nsenter.c; Command builds such a process); with _FOCKKER_INIT_FD the other
// builds a new container's root and becomes its command (see init.c;
// NewInit builds such a process).
package nsenter

/*
#cgo CFLAGS: -Wall -Wextra -std=gnu11
#include "nsenter.h"

__attribute__((constructor)) static void fockker_nsenter_init(void)
{
	nsenter_init_constructor();
	nsenter_constructor();
}
*/
import "C"

import "unsafe"

// constructorLinked is true: the C constructor above is part of this binary.
const constructorLinked = true

// The C decoder and the Go encoder must agree; each pair below fails to
// compile (negative array length) unless both sides hold the same value.
var (
	_ [C.NSENTER_VERSION - configVersion]struct{}
	_ [configVersion - C.NSENTER_VERSION]struct{}
	_ [C.NSENTER_HEADER_SIZE - configHeaderSize]struct{}
	_ [configHeaderSize - C.NSENTER_HEADER_SIZE]struct{}
	_ [C.NSENTER_MAX_CONFIG - maxConfigSize]struct{}
	_ [maxConfigSize - C.NSENTER_MAX_CONFIG]struct{}
	_ [C.NSENTER_MAX_STRING - maxStringLen]struct{}
	_ [maxStringLen - C.NSENTER_MAX_STRING]struct{}
	_ [C.NSENTER_MAX_PATH - maxPathLen]struct{}
	_ [maxPathLen - C.NSENTER_MAX_PATH]struct{}
	_ [C.NSENTER_MAX_ARGS - maxArgs]struct{}
	_ [maxArgs - C.NSENTER_MAX_ARGS]struct{}
	_ [C.NSENTER_MAX_ENV - maxEnv]struct{}
	_ [maxEnv - C.NSENTER_MAX_ENV]struct{}
	_ [C.NSENTER_MAX_CGROUPS - maxCgroupDirs]struct{}
	_ [maxCgroupDirs - C.NSENTER_MAX_CGROUPS]struct{}
	_ [C.NSENTER_MAX_PID - maxPid]struct{}
	_ [maxPid - C.NSENTER_MAX_PID]struct{}
	_ [C.NSENTER_FLAG_TTY - flagTTY]struct{}
	_ [flagTTY - C.NSENTER_FLAG_TTY]struct{}
	_ [C.NSENTER_FLAG_NNP - flagNNP]struct{}
	_ [flagNNP - C.NSENTER_FLAG_NNP]struct{}
	_ [C.NSENTER_FLAG_CREDS - flagCreds]struct{}
	_ [flagCreds - C.NSENTER_FLAG_CREDS]struct{}
	_ [C.NSENTER_FLAG_CAPS - flagCaps]struct{}
	_ [flagCaps - C.NSENTER_FLAG_CAPS]struct{}
	_ [C.NSENTER_FLAG_SECCOMP - flagSeccomp]struct{}
	_ [flagSeccomp - C.NSENTER_FLAG_SECCOMP]struct{}
	_ [C.NSENTER_FLAG_DETACH - flagDetach]struct{}
	_ [flagDetach - C.NSENTER_FLAG_DETACH]struct{}
	_ [C.NSENTER_SECCOMP_FLAGS_ALL - seccompFlagsAll]struct{}
	_ [seccompFlagsAll - C.NSENTER_SECCOMP_FLAGS_ALL]struct{}
	_ [C.NSENTER_MAX_GROUPS - maxGroups]struct{}
	_ [maxGroups - C.NSENTER_MAX_GROUPS]struct{}
	_ [C.NSENTER_MAX_FILTER - maxFilterLen]struct{}
	_ [maxFilterLen - C.NSENTER_MAX_FILTER]struct{}
	_ [C.NSENTER_NS_MNT - nsMountBit]struct{}
	_ [nsMountBit - C.NSENTER_NS_MNT]struct{}
	_ [C.NSENTER_NS_UTS - nsUTSBit]struct{}
	_ [nsUTSBit - C.NSENTER_NS_UTS]struct{}
	_ [C.NSENTER_NS_IPC - nsIPCBit]struct{}
	_ [nsIPCBit - C.NSENTER_NS_IPC]struct{}
	_ [C.NSENTER_NS_NET - nsNetBit]struct{}
	_ [nsNetBit - C.NSENTER_NS_NET]struct{}
	_ [C.NSENTER_NS_PID - nsPIDBit]struct{}
	_ [nsPIDBit - C.NSENTER_NS_PID]struct{}
	_ [C.NSENTER_NS_CGROUP - nsCgroupBit]struct{}
	_ [nsCgroupBit - C.NSENTER_NS_CGROUP]struct{}
	_ [C.NSENTER_INIT_VERSION - initVersion]struct{}
	_ [initVersion - C.NSENTER_INIT_VERSION]struct{}
	_ [C.NSENTER_INIT_HEADER_SIZE - initHeaderSize]struct{}
	_ [initHeaderSize - C.NSENTER_INIT_HEADER_SIZE]struct{}
	_ [C.NSENTER_INIT_CONFIG_FD - initConfigFD]struct{}
	_ [initConfigFD - C.NSENTER_INIT_CONFIG_FD]struct{}
	_ [C.NSENTER_INIT_STATUS_FD - initStatusFD]struct{}
	_ [initStatusFD - C.NSENTER_INIT_STATUS_FD]struct{}
	_ [C.NSENTER_INIT_MAX_VOLUMES - maxVolumes]struct{}
	_ [maxVolumes - C.NSENTER_INIT_MAX_VOLUMES]struct{}
	_ [C.NSENTER_INIT_MAX_PATHS - maxInitPaths]struct{}
	_ [maxInitPaths - C.NSENTER_INIT_MAX_PATHS]struct{}
	_ [C.NSENTER_INIT_MAX_HOSTNAME - maxHostname]struct{}
	_ [maxHostname - C.NSENTER_INIT_MAX_HOSTNAME]struct{}
	_ [C.NSENTER_INIT_TTY - initTTY]struct{}
	_ [initTTY - C.NSENTER_INIT_TTY]struct{}
	_ [C.NSENTER_INIT_LOOPBACK - initLoopback]struct{}
	_ [initLoopback - C.NSENTER_INIT_LOOPBACK]struct{}
	_ [C.NSENTER_INIT_RESTRICT - initRestrict]struct{}
	_ [initRestrict - C.NSENTER_INIT_RESTRICT]struct{}
	_ [C.NSENTER_INIT_RO_ROOT - initReadOnlyRoot]struct{}
	_ [initReadOnlyRoot - C.NSENTER_INIT_RO_ROOT]struct{}
	_ [C.NSENTER_VOLUME_RO - volumeReadOnly]struct{}
	_ [volumeReadOnly - C.NSENTER_VOLUME_RO]struct{}
	_ [C.NSENTER_EXIT_SETUP - ExitSetup]struct{}
	_ [ExitSetup - C.NSENTER_EXIT_SETUP]struct{}
	_ [C.NSENTER_EXIT_CANNOT_RUN - ExitCannotRun]struct{}
	_ [ExitCannotRun - C.NSENTER_EXIT_CANNOT_RUN]struct{}
	_ [C.NSENTER_EXIT_NOT_FOUND - ExitNotFound]struct{}
	_ [ExitNotFound - C.NSENTER_EXIT_NOT_FOUND]struct{}
)

// cEnvName returns NSENTER_ENV, which must equal envFD; it is checked by the
// tests, which cannot use cgo themselves.
func cEnvName() string { return C.NSENTER_ENV }

// cInitEnvName returns NSENTER_INIT_ENV, which must equal initEnvFD.
func cInitEnvName() string { return C.NSENTER_INIT_ENV }

// cParseStartTime runs the C parser of /proc/PID/stat, for the tests.
func cParseStartTime(stat []byte) (uint64, bool) {
	var v C.uint64_t
	var p *C.char
	if len(stat) > 0 {
		p = (*C.char)(unsafe.Pointer(&stat[0]))
	}
	ok := C.nsenter_parse_start_time(p, C.size_t(len(stat)), &v) == 0
	return uint64(v), ok
}
