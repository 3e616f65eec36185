package nsenter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// envFD names the private environment variable that switches the C
// constructor on; its value is the number of the fd carrying the config.
const envFD = "_FOCKKER_NSENTER_FD"

// configFD is the fd number of the config pipe in the started process: the
// first entry of ExtraFiles.
const configFD = 3

// Exit codes of a Command process when the command did not run normally,
// as docker uses them. Otherwise it exits with the command's status, or
// 128+N if signal N killed the command.
const (
	ExitSetup     = 125 // joining the container failed; nothing ran
	ExitCannotRun = 126 // the command exists but cannot be executed
	ExitNotFound  = 127 // the command was not found
)

// Namespace names, as in /proc/PID/ns.
const (
	NSMount  = "mnt"
	NSUTS    = "uts"
	NSIPC    = "ipc"
	NSNet    = "net"
	NSPID    = "pid"
	NSCgroup = "cgroup"
)

// Wire format and limits; nsenter.h documents the format and holds the same
// limits (main.go does not compile if they differ).
const (
	configMagic      = "FKNS"
	configVersion    = 2
	configHeaderSize = 20
	maxConfigSize    = 1 << 20
	maxStringLen     = 128 << 10
	maxPathLen       = 4095
	maxArgs          = 4096
	maxEnv           = 4096
	maxCgroupDirs    = 32
	maxPid           = 1 << 22
	maxGroups        = 65536 // NGROUPS_MAX
	maxFilterLen     = 4096  // BPF_MAXINSNS

	flagTTY     = 0x01
	flagNNP     = 0x02
	flagCreds   = 0x04
	flagCaps    = 0x08
	flagSeccomp = 0x10
	flagDetach  = 0x20

	// seccompFlagsAll are the SECCOMP_FILTER_FLAG_* bits a filter may carry:
	// LOG and SPEC_ALLOW.
	seccompFlagsAll = unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW

	nsMountBit  = 0x01
	nsUTSBit    = 0x02
	nsIPCBit    = 0x04
	nsNetBit    = 0x08
	nsPIDBit    = 0x10
	nsCgroupBit = 0x20
)

// nsBit maps a namespace name to its bit in the wire format.
func nsBit(name string) (uint16, bool) {
	switch name {
	case NSMount:
		return nsMountBit, true
	case NSUTS:
		return nsUTSBit, true
	case NSIPC:
		return nsIPCBit, true
	case NSNet:
		return nsNetBit, true
	case NSPID:
		return nsPIDBit, true
	case NSCgroup:
		return nsCgroupBit, true
	}
	return 0, false
}

var (
	// ErrInvalidConfig is wrapped by every error Validate returns.
	ErrInvalidConfig = errors.New("invalid nsenter config")
	// ErrUnsupported is returned by Command when this binary was built
	// without the C constructor (no cgo, or not Linux).
	ErrUnsupported = errors.New("nsenter: binary built without cgo")
)

// Config describes one command to run inside a running container.
type Config struct {
	// Pid is the container's init process as seen from the caller.
	Pid int
	// StartTime is field 22 of /proc/Pid/stat when the container started
	// (see StartTime); a process with another start time is refused.
	StartTime uint64
	// Namespaces to join, by NS* name. NSMount is required; every listed
	// namespace must differ from the caller's own (otherwise the command
	// would run on the host, and is refused).
	Namespaces []string
	// CgroupDirs are cgroup directories (clean absolute paths on a cgroup
	// filesystem) whose cgroup.procs the command joins.
	CgroupDirs []string
	// Cwd is the absolute working directory inside the container; "" means "/".
	// If it cannot be entered the command does not run (exit 125).
	Cwd string
	// Env is the command's whole environment as KEY=VALUE entries with
	// distinct keys; nothing of the caller's environment is added. PATH
	// from here (or a default) is used to find Args[0] if it has no '/'.
	Env []string
	// Args is the command and its arguments, passed to execve unchanged.
	Args []string
	// Tty makes the command a session leader with stdin as its
	// controlling terminal (stdin must then be a terminal, e.g. a pty slave).
	Tty bool
	// Detach makes the process exit as soon as the command has been
	// executed (0), or could not be (125/126/127), leaving the command
	// running in a session of its own inside the container.
	Detach bool

	// The restrictions below are applied by the command's process after it
	// has joined the container and before execve, in runc's order: bounding
	// set; the seccomp filter if NoNewPrivs is false (loading one needs
	// CAP_SYS_ADMIN then); groups, gid and uid, keeping the permitted set;
	// the other capability sets; no_new_privs and the seccomp filter if
	// NoNewPrivs is true. A nil field leaves that part as the caller has it
	// (which, for a caller that is root, means unrestricted).

	// Creds is who the command runs as.
	Creds *Creds
	// Caps are the command's capability sets.
	Caps *Caps
	// NoNewPrivs sets no_new_privs.
	NoNewPrivs bool
	// Seccomp is a filter loaded into the command's process.
	Seccomp *Seccomp
}

// Creds are a process's user, group and supplementary groups.
type Creds struct {
	UID, GID uint32
	Groups   []uint32 // at most 65536; none means no supplementary groups
}

// Caps are a process's capability sets, bit N meaning capability N.
// Effective must be within Permitted, Ambient within Permitted and
// Inheritable; the bounding set is reduced to Bounding.
type Caps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// Seccomp is a classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER).
type Seccomp struct {
	Flags        uint32            // SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW
	Instructions []unix.SockFilter // 1 to 4096
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

func checkString(what, s string, max int) error {
	if len(s) > max {
		return invalid("%s: %d bytes exceed the limit of %d", what, len(s), max)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid("%s: contains a NUL byte", what)
	}
	return nil
}

// Validate checks c against the same rules as the C decoder, and a few more
// (duplicate namespaces and environment keys) that only make sense here.
func (c *Config) Validate() error {
	if c == nil {
		return invalid("no config")
	}
	if c.Pid < 1 || c.Pid > maxPid {
		return invalid("pid %d out of range", c.Pid)
	}
	if c.StartTime == 0 {
		return invalid("start time of pid %d is missing", c.Pid)
	}
	var seen uint16
	for _, name := range c.Namespaces {
		bit, ok := nsBit(name)
		if !ok {
			return invalid("unknown namespace %q", name)
		}
		if seen&bit != 0 {
			return invalid("namespace %q listed twice", name)
		}
		seen |= bit
	}
	if seen&nsMountBit == 0 {
		return invalid("the %q namespace is required", NSMount)
	}
	if len(c.CgroupDirs) > maxCgroupDirs {
		return invalid("%d cgroup dirs exceed the limit of %d", len(c.CgroupDirs), maxCgroupDirs)
	}
	for _, dir := range c.CgroupDirs {
		if err := checkString("cgroup dir", dir, maxPathLen); err != nil {
			return err
		}
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return invalid("cgroup dir %q is not a clean absolute path", dir)
		}
	}
	if err := checkString("cwd", c.Cwd, maxPathLen); err != nil {
		return err
	}
	if c.Cwd != "" && !filepath.IsAbs(c.Cwd) {
		return invalid("cwd %q is not absolute", c.Cwd)
	}
	if len(c.Env) > maxEnv {
		return invalid("%d env entries exceed the limit of %d", len(c.Env), maxEnv)
	}
	keys := make(map[string]struct{}, len(c.Env))
	for i, kv := range c.Env {
		if err := checkString(fmt.Sprintf("env entry %d", i), kv, maxStringLen); err != nil {
			return err
		}
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return invalid("env entry %q is not KEY=VALUE", kv)
		}
		if _, dup := keys[key]; dup {
			return invalid("env key %q set twice", key)
		}
		keys[key] = struct{}{}
	}
	if len(c.Args) == 0 {
		return invalid("no command")
	}
	if len(c.Args) > maxArgs {
		return invalid("%d args exceed the limit of %d", len(c.Args), maxArgs)
	}
	if c.Args[0] == "" {
		return invalid("empty command name")
	}
	for i, arg := range c.Args {
		if err := checkString(fmt.Sprintf("arg %d", i), arg, maxStringLen); err != nil {
			return err
		}
	}
	return c.validateSecurity()
}

// validateSecurity checks Creds, Caps and Seccomp with the C decoder's rules.
func (c *Config) validateSecurity() error {
	const unset = ^uint32(0) // -1 means "unchanged" to the set*id calls
	if cr := c.Creds; cr != nil {
		if cr.UID == unset || cr.GID == unset {
			return invalid("uid or gid %d is reserved", unset)
		}
		if len(cr.Groups) > maxGroups {
			return invalid("%d groups exceed the limit of %d", len(cr.Groups), maxGroups)
		}
		for _, g := range cr.Groups {
			if g == unset {
				return invalid("group %d is reserved", unset)
			}
		}
	}
	if cp := c.Caps; cp != nil {
		if cp.Effective&^cp.Permitted != 0 {
			return invalid("effective capabilities %#x not within permitted %#x", cp.Effective, cp.Permitted)
		}
		if cp.Ambient&^(cp.Permitted&cp.Inheritable) != 0 {
			return invalid("ambient capabilities %#x not within permitted and inheritable", cp.Ambient)
		}
	}
	if sc := c.Seccomp; sc != nil {
		if n := len(sc.Instructions); n == 0 || n > maxFilterLen {
			return invalid("seccomp filter of %d instructions (want 1 to %d)", n, maxFilterLen)
		}
		if sc.Flags&^seccompFlagsAll != 0 {
			return invalid("unknown seccomp flags %#x", sc.Flags)
		}
	}
	return nil
}

// MarshalBinary validates c and encodes it in the format the C constructor
// reads (see nsenter.h).
func (c *Config) MarshalBinary() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	data := c.encode()
	if len(data) > maxConfigSize {
		return nil, invalid("encoded size %d exceeds the limit of %d", len(data), maxConfigSize)
	}
	return data, nil
}

// encode writes c in the wire format without validating it (tests use it
// to hand the C decoder configs that Validate would refuse). Unknown
// namespace names are dropped and Pid is truncated to 32 bits.
func (c *Config) encode() []byte {
	var ns uint16
	for _, name := range c.Namespaces {
		bit, _ := nsBit(name)
		ns |= bit
	}
	var flags byte
	if c.Tty {
		flags |= flagTTY
	}
	if c.NoNewPrivs {
		flags |= flagNNP
	}
	if c.Creds != nil {
		flags |= flagCreds
	}
	if c.Caps != nil {
		flags |= flagCaps
	}
	if c.Seccomp != nil {
		flags |= flagSeccomp
	}
	if c.Detach {
		flags |= flagDetach
	}
	b := make([]byte, 0, configHeaderSize+64)
	b = append(b, configMagic...)
	b = append(b, configVersion, flags)
	b = binary.LittleEndian.AppendUint16(b, ns)
	b = binary.LittleEndian.AppendUint32(b, uint32(c.Pid))
	b = binary.LittleEndian.AppendUint64(b, c.StartTime)
	b = appendString(b, c.Cwd)
	b = appendList(b, c.CgroupDirs)
	b = appendList(b, c.Env)
	b = appendList(b, c.Args)
	if cr := c.Creds; cr != nil {
		b = binary.LittleEndian.AppendUint32(b, cr.UID)
		b = binary.LittleEndian.AppendUint32(b, cr.GID)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(cr.Groups)))
		for _, g := range cr.Groups {
			b = binary.LittleEndian.AppendUint32(b, g)
		}
	}
	if cp := c.Caps; cp != nil {
		for _, set := range []uint64{cp.Bounding, cp.Effective, cp.Permitted, cp.Inheritable, cp.Ambient} {
			b = binary.LittleEndian.AppendUint64(b, set)
		}
	}
	if sc := c.Seccomp; sc != nil {
		b = binary.LittleEndian.AppendUint32(b, sc.Flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(sc.Instructions)))
		for _, in := range sc.Instructions {
			b = binary.LittleEndian.AppendUint16(b, in.Code)
			b = append(b, in.Jt, in.Jf)
			b = binary.LittleEndian.AppendUint32(b, in.K)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendList(b []byte, list []string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(list)))
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

// Command returns a command that, once started, joins the container
// described by c and runs c.Args there; its exit status is the command's
// (125 if joining failed and nothing ran, 126/127 if the command cannot be
// run or was not found, 128+N if signal N killed it). self is a binary that
// links this package, usually "/proc/self/exe".
//
// The process runs with an environment holding only the private variable
// that activates the constructor, and gets the config on a pipe as
// ExtraFiles[0]. The whole config is written into that pipe (grown to fit if
// needed) and its write end closed before Command returns, so nothing can
// block however the caller starts, or never starts, the command. The caller
// sets Stdin, Stdout and Stderr (a pty slave when c.Tty) and closes
// cmd.ExtraFiles[0] after cmd.Start returns or when abandoning cmd. The
// command receives only fds 0, 1 and 2; the caller must not set
// SysProcAttr.Setsid/Setctty when c.Tty, since the command takes the tty.
//
// The process stays a small C parent of the command, inside c.CgroupDirs
// (it counts against pids.max) and every namespace but the PID one. It
// relays SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to it.
// Without Tty the command shares its process group, so signals the kernel
// sends to the group (^C on the terminal) reach the command directly and
// are not relayed a second time; a caller that catches such signals itself
// should not forward them in that mode either.
func Command(self string, c *Config) (*exec.Cmd, error) {
	data, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return command(self, data)
}

// command wraps already encoded config data.
func command(self string, data []byte) (*exec.Cmd, error) {
	if !constructorLinked {
		return nil, ErrUnsupported
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nsenter: config pipe: %w", err)
	}
	if err := writeConfig(w, data); err != nil {
		r.Close()
		return nil, err
	}
	return &exec.Cmd{
		Path:       self,
		Args:       []string{"fockker-exec"},
		Env:        []string{envFD + "=" + strconv.Itoa(configFD)},
		ExtraFiles: []*os.File{r},
	}, nil
}

// writeConfig puts data into the pipe behind w, which it always closes.
func writeConfig(w *os.File, data []byte) error {
	err := ensurePipeCapacity(w, len(data))
	if err == nil {
		if _, werr := w.Write(data); werr != nil {
			err = fmt.Errorf("nsenter: write config: %w", werr)
		}
	}
	if cerr := w.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("nsenter: close config pipe: %w", cerr)
	}
	return err
}

// ensurePipeCapacity grows the pipe behind w so that n bytes fit without a
// reader.
func ensurePipeCapacity(w *os.File, n int) error {
	rc, err := w.SyscallConn()
	if err != nil {
		return fmt.Errorf("nsenter: config pipe: %w", err)
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		size, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		if err != nil {
			opErr = os.NewSyscallError("fcntl F_GETPIPE_SZ", err)
			return
		}
		if size >= n {
			return
		}
		if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, n); err != nil {
			opErr = fmt.Errorf("config of %d bytes does not fit the pipe: %w",
				n, os.NewSyscallError("fcntl F_SETPIPE_SZ", err))
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return fmt.Errorf("nsenter: %w", err)
	}
	return nil
}

// StartTime returns field 22 of /proc/pid/stat: when the process started, in
// clock ticks since boot. Together with the pid it identifies a process; an
// error wrapping fs.ErrNotExist means there is no such process.
func StartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	v, err := parseStartTime(data)
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	return v, nil
}

// parseStartTime extracts field 22 from a /proc/PID/stat line. Field 2 is
// the command name in parentheses and may itself contain spaces and ')', so
// fields are counted from the last ')'.
func parseStartTime(stat []byte) (uint64, error) {
	open := bytes.IndexByte(stat, '(')
	end := bytes.LastIndexByte(stat, ')')
	if open < 1 || end < open {
		return 0, errors.New("malformed stat: no (comm)")
	}
	if _, err := strconv.ParseUint(string(stat[:open-1]), 10, 32); err != nil || stat[open-1] != ' ' {
		return 0, errors.New("malformed stat: bad pid field")
	}
	rest := strings.TrimSuffix(string(stat[end+1:]), "\n")
	if !strings.HasPrefix(rest, " ") {
		return 0, errors.New("malformed stat: nothing after (comm)")
	}
	fields := strings.Split(rest[1:], " ")
	const idx = 22 - 3 // fields[0] is field 3, the state
	if len(fields) <= idx {
		return 0, fmt.Errorf("malformed stat: %d fields after (comm), want more than %d", len(fields), idx)
	}
	for _, f := range fields[:idx] {
		if f == "" {
			return 0, errors.New("malformed stat: empty field")
		}
	}
	v, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed stat: start time: %w", err)
	}
	return v, nil
}

// Environ returns the environment the process pid was started with
// (/proc/pid/environ), e.g. a container's init, as KEY=VALUE entries. For a
// process caught inside execve (after exec.Cmd.Start returned, before the
// new program runs) the kernel still shows an empty environment.
func Environ(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, fmt.Errorf("environment of pid %d: %w", pid, err)
	}
	return parseEnviron(data)
}

// parseEnviron splits NUL-terminated KEY=VALUE entries.
func parseEnviron(data []byte) ([]string, error) {
	env := []string{}
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return nil, errors.New("malformed environ: last entry not terminated")
		}
		kv := string(data[:i])
		data = data[i+1:]
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("malformed environ: entry %q is not KEY=VALUE", kv)
		}
		env = append(env, kv)
	}
	return env, nil
}
