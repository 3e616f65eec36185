package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/FishingRodd/fockker/container/security"
	"golang.org/x/sys/unix"
)

// InitCommand is argv[1] of the re-executed binary that becomes a container's first process.
// main dispatches it before the CLI parses anything.
const InitCommand = "init"

// initEnv marks a process started by Create as a container init; without it `init` refuses.
const initEnv = "_FOCKKER_INIT"

// The descriptors Create passes to init: config and start signal in, status out.
const (
	initConfigFd = 3
	initStatusFd = 4
)

// initConfig is what init needs to build the container; it travels as JSON over fd 3.
type initConfig struct {
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cwd      string   `json:"cwd"`
	Hostname string   `json:"hostname"`
	Tty      bool     `json:"tty"`
	OwnNet   bool     `json:"ownNet"` // a new network namespace whose lo init brings up
	Lower    string   `json:"lower"`
	Upper    string   `json:"upper"`
	Work     string   `json:"work"`
	Merged   string   `json:"merged"`
	Volumes  []Volume `json:"volumes"`
	// Security is what the user's command is restricted to (always sent).
	Security *security.Process `json:"security"`
}

// initMsg is one status report from init to its creator, one JSON object per line.
type initMsg struct {
	Type  string `json:"type"` // "ready" or "error"
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// User is who the command will run as (with "ready").
	User *security.Identity `json:"user,omitempty"`
}

// Exit codes that follow docker's convention.
const (
	ExitEngine      = 125 // fockker itself failed
	ExitCannotExec  = 126 // the command exists but cannot be invoked
	ExitNotFound    = 127 // the command was not found
	initFailureCode = ExitEngine
)

// RunInit is the body of a container's init process. It runs in the new namespaces, builds
// the root filesystem, reports ready, waits for the start signal and execs the user's
// command. It returns only on failure, with the exit code to use.
func RunInit() int {
	if os.Getenv(initEnv) != "1" {
		fmt.Fprintln(os.Stderr, "fockker: init is internal: it is started by `fockker run`, not by hand")
		return ExitEngine
	}
	status := os.NewFile(initStatusFd, "status")
	report := func(code int, err error) int {
		b, _ := json.Marshal(initMsg{Type: "error", Code: code, Error: err.Error()})
		if _, werr := status.Write(append(b, '\n')); werr != nil {
			fmt.Fprintln(os.Stderr, "fockker init:", err)
		}
		return code
	}
	// Nothing of ours may leak into the user's process.
	unix.CloseOnExec(initConfigFd)
	unix.CloseOnExec(initStatusFd)

	ctl := os.NewFile(initConfigFd, "config")
	var cfg initConfig
	dec := json.NewDecoder(ctl)
	if err := dec.Decode(&cfg); err != nil {
		return report(initFailureCode, fmt.Errorf("read config: %w", err))
	}
	if cfg.Security == nil {
		return report(initFailureCode, errors.New("config without security settings"))
	}
	sec := cfg.Security
	if err := setupRootfs(&cfg); err != nil {
		return report(initFailureCode, err)
	}
	// In the container's root now. Docker's order: masked and read-only paths, the working
	// directory (created while the root is still writable), the read-only root, the user.
	if !sec.Privileged {
		if err := security.RestrictPaths(); err != nil {
			return report(initFailureCode, err)
		}
	}
	if cfg.Cwd != "" {
		if err := os.MkdirAll(cfg.Cwd, 0o755); err != nil {
			return report(initFailureCode, fmt.Errorf("working directory %q: %w", cfg.Cwd, err))
		}
	}
	if sec.ReadOnlyRootfs {
		if err := security.RemountRootReadOnly(); err != nil {
			return report(initFailureCode, err)
		}
	}
	id, err := security.ResolveUser(sec.User)
	if err != nil {
		return report(initFailureCode, fmt.Errorf("user %q: %w", sec.User, err))
	}
	if envValue(cfg.Env, "HOME") == "" {
		cfg.Env = MergeEnv(cfg.Env, []string{"HOME=" + id.Home})
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return report(initFailureCode, fmt.Errorf("sethostname: %w", err))
	}
	if cfg.OwnNet {
		if err := loopbackUp(); err != nil {
			return report(initFailureCode, err)
		}
	}
	if b, err := json.Marshal(initMsg{Type: "ready", User: &id}); err != nil || writeAll(status, append(b, '\n')) != nil {
		return initFailureCode
	}
	// Park until the creator says start. EOF means it gave up: leave without a word.
	if !waitStart(io.MultiReader(dec.Buffered(), ctl)) {
		return initFailureCode
	}
	ctl.Close()

	// Enter the working directory as root, or, if root may not (a directory on a root-squashed
	// volume), as the user once it is set, as runc does.
	var cwdErr error
	if cfg.Cwd != "" {
		if cwdErr = unix.Chdir(cfg.Cwd); cwdErr != nil && !errors.Is(cwdErr, unix.EACCES) && !errors.Is(cwdErr, unix.EPERM) {
			return report(initFailureCode, fmt.Errorf("working directory %q: %w", cfg.Cwd, cwdErr))
		}
	}
	// Drop to the user and the container's restrictions on this thread, which main locked
	// and which execs below. The seccomp filter is in place from here on.
	if err := sec.Apply(id); err != nil {
		return report(initFailureCode, err)
	}
	if cwdErr != nil {
		if err := unix.Chdir(cfg.Cwd); err != nil {
			return report(initFailureCode, fmt.Errorf("working directory %q: %w", cfg.Cwd, err))
		}
	}
	path, code, err := lookPath(cfg.Args[0], envValue(cfg.Env, "PATH"))
	if err != nil {
		return report(code, err)
	}
	if err := closeExtraFds(); err != nil {
		return report(initFailureCode, err)
	}
	err = unix.Exec(path, cfg.Args, cfg.Env)
	return report(execExitCode(err), fmt.Errorf("exec %q: %w", cfg.Args[0], err))
}

// closeExtraFds marks every descriptor above stderr close-on-exec, so that the user's
// command inherits only its stdio. Whatever started fockker may have left descriptors open
// without close-on-exec, and they came all the way down here: a directory of the host's
// would let the container walk out of its root through /proc/self/fd.
func closeExtraFds() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("close_range", err)
	}
	// Before Linux 5.11: one by one. The container's /proc is mounted by now.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// waitStart reads the creator's start byte. The config decoder may or may not have read the
// encoder's trailing newline, so whitespace before the byte is skipped: taking that newline
// for the start signal would run the command before the creator released it.
func waitStart(r io.Reader) bool {
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return false
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b[0] == 1
	}
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// execExitCode maps an execve failure to docker's exit codes.
func execExitCode(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return ExitNotFound
	}
	return ExitCannotExec
}

// lookPath finds a command the way a shell would, with the container's PATH (never the
// host's). It returns docker's exit code for a failure.
func lookPath(name, pathEnv string) (string, int, error) {
	if name == "" {
		return "", ExitNotFound, errors.New("empty command")
	}
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", execExitCode(err), err
		}
		return name, 0, nil
	}
	if pathEnv == "" {
		pathEnv = DefaultPath
	}
	denied := ""
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := checkExecutable(p)
		if err == nil {
			return p, 0, nil
		}
		if errors.Is(err, unix.EACCES) && denied == "" {
			denied = p
		}
	}
	if denied != "" {
		return "", ExitCannotExec, fmt.Errorf("%q: permission denied", denied)
	}
	return "", ExitNotFound, fmt.Errorf("%q: executable file not found in $PATH", name)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &os.PathError{Op: "exec", Path: p, Err: unix.EACCES}
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return &os.PathError{Op: "exec", Path: p, Err: err}
	}
	return nil
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// loopbackUp brings lo up in the container's new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("SIOCGIFFLAGS lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("SIOCSIFFLAGS lo", err)
	}
	return nil
}
