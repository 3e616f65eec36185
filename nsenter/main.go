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
// NewInit builds such a process). The third forks, for a `run` or a
// watcher, a helper that makes a container's namespaces while the Go runtime
// starts and clones its init on request (see prefork.c; TakePrefork).
package nsenter

/*
#cgo CFLAGS: -Wall -Wextra -std=gnu11
#include <stdlib.h>
#include "nsenter.h"

#ifdef __GLIBC__
// glibc passes argc and argv to constructors; other C libraries (musl) pass nothing, and the
// command line is read from /proc/self/cmdline instead.
__attribute__((constructor)) static void fockker_nsenter_init(int argc, char **argv)
{
	nsenter_init_constructor();
	nsenter_constructor();
	nsenter_prefork_constructor(argc, argv);
}
#else
__attribute__((constructor)) static void fockker_nsenter_init(void)
{
	nsenter_init_constructor();
	nsenter_constructor();
	nsenter_prefork_constructor_proc();
}
#endif
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
	_ [C.PREFORK_MAGIC - preforkMagic]struct{}
	_ [preforkMagic - C.PREFORK_MAGIC]struct{}
	_ [C.PREFORK_TTY - preforkTTY]struct{}
	_ [preforkTTY - C.PREFORK_TTY]struct{}
	_ [C.PREFORK_HOSTNET - preforkHostNet]struct{}
	_ [preforkHostNet - C.PREFORK_HOSTNET]struct{}
	_ [C.PREFORK_CGROUP - preforkCgroup]struct{}
	_ [preforkCgroup - C.PREFORK_CGROUP]struct{}
	_ [C.NSENTER_EXIT_SETUP - ExitSetup]struct{}
	_ [ExitSetup - C.NSENTER_EXIT_SETUP]struct{}
	_ [C.NSENTER_EXIT_CANNOT_RUN - ExitCannotRun]struct{}
	_ [ExitCannotRun - C.NSENTER_EXIT_CANNOT_RUN]struct{}
	_ [C.NSENTER_EXIT_NOT_FOUND - ExitNotFound]struct{}
	_ [ExitNotFound - C.NSENTER_EXIT_NOT_FOUND]struct{}
)

// takePrefork returns the CLI's end of the prefork helper's socket and the helper's pid,
// once; fd -1 if there is none.
func takePrefork() (fd, pid int) {
	var p C.int
	fd = int(C.nsenter_prefork_take(&p))
	return fd, int(p)
}

// cPreforkWanted runs the C recogniser of command lines that get a prefork helper, for the
// tests.
func cPreforkWanted(args []string, watch bool) bool {
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
		defer C.free(unsafe.Pointer(argv[i]))
	}
	w := C.int(0)
	if watch {
		w = 1
	}
	var p **C.char
	if len(argv) > 0 {
		p = &argv[0]
	}
	return C.nsenter_prefork_wanted(C.int(len(args)), p, w) != 0
}

// cPreforkNames returns PREFORK_HELPER_NAME, PREFORK_INIT_NAME and PREFORK_WATCH_ENV, which
// must equal HelperName, InitName and WatcherEnv.
func cPreforkNames() (helper, init, watchEnv string) {
	return C.PREFORK_HELPER_NAME, C.PREFORK_INIT_NAME, C.PREFORK_WATCH_ENV
}

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
