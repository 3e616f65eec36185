package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/FishingRodd/fockker/container"
	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/container/security"
	"github.com/FishingRodd/fockker/network"
	"github.com/creack/pty"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// runAction is `fockker run`: validate everything, then create and start the container
// detached (through a watcher) or attached (this process is its parent).
func runAction(ctx context.Context, cmd *cli.Command) error {
	sc := signalsOf(ctx)
	r, err := roots(cmd)
	if err != nil {
		return err
	}
	spec, err := specFromFlags(cmd, r)
	if err != nil {
		return err
	}
	// What crashes left behind that this run needs (its name, its ports) is freed first,
	// cheaply and never waiting for other runs (see container.PruneForRun).
	if err := container.PruneForRun(r, spec); err != nil {
		logrus.Debugf("prune: %v", err)
	}
	if spec.Detach {
		sc.stop()
		rec, err := container.RunDetached(r, spec)
		if err != nil {
			return err
		}
		logrus.Debugf("container %s: pid %d, watcher %d", rec.Name, rec.Pid, rec.WatcherPid)
		fmt.Println(say(msgStarted, rec.Name))
		return nil
	}
	return runAttached(r, spec, sc)
}

// flagValues reads a command's parsed flags through an index made once: urfave/cli's own
// look-ups (cmd.String and the like) scan every flag of the command and its parents and
// allocate each one's names on every call, ~0.3 ms for the ~30 look-ups of a run.
type flagValues map[string]cli.Flag

// flagsOf indexes the flags of cmd and its parents by every name; the nearest wins, as in
// urfave/cli.
func flagsOf(cmd *cli.Command) flagValues {
	v := flagValues{}
	for _, c := range cmd.Lineage() {
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if _, ok := v[n]; !ok {
					v[n] = f
				}
			}
		}
	}
	return v
}

func (v flagValues) get(name string) any {
	if f, ok := v[name]; ok {
		return f.Get()
	}
	return nil
}

func (v flagValues) str(name string) string    { s, _ := v.get(name).(string); return s }
func (v flagValues) on(name string) bool       { b, _ := v.get(name).(bool); return b }
func (v flagValues) strs(name string) []string { s, _ := v.get(name).([]string); return s }
func (v flagValues) u64(name string) uint64    { n, _ := v.get(name).(uint64); return n }
func (v flagValues) i64(name string) int64     { n, _ := v.get(name).(int64); return n }
func (v flagValues) isSet(name string) bool    { f, ok := v[name]; return ok && f.IsSet() }

// specFromFlags turns run's flags and arguments into a validated Spec, completed by the
// image's config. Nothing on the machine is touched here: a bad input is refused before
// anything exists.
func specFromFlags(cmd *cli.Command, r container.Roots) (container.Spec, error) {
	fl := flagsOf(cmd)
	args := cmd.Args().Slice()
	if len(args) == 0 {
		return container.Spec{}, errors.New("run: an image is required: fockker run [flags] IMAGE [COMMAND [ARG...]]")
	}
	spec := container.Spec{
		Image:        args[0],
		Args:         args[1:],
		Name:         fl.str("name"),
		Hostname:     fl.str("hostname"),
		WorkingDir:   fl.str("w"),
		Detach:       fl.on("d"),
		AutoRemove:   fl.on("rm"),
		Tty:          fl.on("it") || fl.on("t"),
		Interactive:  fl.on("it") || fl.on("i"),
		CgroupParent: container.DefaultCgroupParent,
		Network:      fl.str("net"),
	}
	if err := container.ValidateName("image", spec.Image); err != nil {
		return spec, err
	}
	// The image's config fills in what the user left out, as docker does: the command is
	// Entrypoint + (the user's arguments, else Cmd), the working directory its WorkingDir, and
	// its Env sits under the user's -e, its User applies without -u.
	img, err := container.Images(r).Config(spec.Image)
	if err != nil {
		return spec, err
	}
	entrypoint := img.Entrypoint
	if fl.isSet("entrypoint") { // like docker, --entrypoint also drops the image's Cmd
		entrypoint, img.Cmd = nil, nil
		if e := fl.str("entrypoint"); e != "" {
			entrypoint = []string{e}
		}
	}
	if len(spec.Args) == 0 {
		spec.Args = img.Cmd
	}
	spec.Args = append(append([]string{}, entrypoint...), spec.Args...)
	if len(spec.Args) == 0 {
		return spec, fmt.Errorf("run: no command given for image %q, and the image has no Entrypoint or Cmd", spec.Image)
	}
	if spec.WorkingDir == "" && img.WorkingDir != "" {
		if !strings.HasPrefix(img.WorkingDir, "/") {
			return spec, fmt.Errorf("image %q: WorkingDir %q is not an absolute path", spec.Image, img.WorkingDir)
		}
		spec.WorkingDir = img.WorkingDir
	}
	if spec.Name != "" {
		if err := container.ValidateName("container", spec.Name); err != nil {
			return spec, err
		}
	}
	if spec.Hostname != "" && !validHostname(spec.Hostname) {
		return spec, fmt.Errorf("--hostname %q: not a valid hostname", spec.Hostname)
	}
	if spec.WorkingDir != "" && !strings.HasPrefix(spec.WorkingDir, "/") {
		return spec, fmt.Errorf("-w %q: the working directory must be an absolute path", spec.WorkingDir)
	}
	if spec.Detach && (spec.Tty || spec.Interactive) {
		return spec, errors.New("run: -d cannot be combined with -i/-t/-it: a detached container has no terminal")
	}
	seen := map[string]bool{}
	for _, s := range fl.strs("v") {
		v, err := container.ParseVolume(s)
		if err != nil {
			return spec, err
		}
		if seen[v.Target] {
			return spec, fmt.Errorf("volume %q: %s is already a mount point: %w", s, v.Target, container.ErrInvalidVolume)
		}
		seen[v.Target] = true
		spec.Volumes = append(spec.Volumes, v)
	}
	switch spec.Network {
	case container.NetNone, container.NetHost:
		if len(fl.strs("p")) > 0 {
			return spec, fmt.Errorf("-p: cannot publish ports with --net %s", spec.Network)
		}
	default:
		if err := network.ValidateName(spec.Network); err != nil {
			return spec, fmt.Errorf("--net: %w", err)
		}
		if spec.Ports, err = network.ParsePortMappings(fl.strs("p")); err != nil {
			return spec, err
		}
	}
	if spec.Limits, err = limitsFromFlags(fl); err != nil {
		return spec, err
	}
	runAs := fl.str("u")
	if runAs == "" {
		runAs = img.User // the image's USER, as docker does
	}
	if spec.Security, err = security.ParseFlags(security.Flags{
		Privileged: fl.on("privileged"), CapAdd: fl.strs("cap-add"), CapDrop: fl.strs("cap-drop"),
		SecurityOpt: fl.strs("security-opt"), ReadOnly: fl.on("read-only"), User: runAs,
	}); err != nil {
		return spec, err
	}
	user, err := userEnv(fl.strs("env-file"), fl.strs("e"))
	if err != nil {
		return spec, err
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = spec.Name // empty without --name: Create fills in the ID
	}
	spec.Env = containerEnv(hostname, spec.Tty, container.MergeEnv(img.Env, user))
	return spec, nil
}

func limitsFromFlags(fl flagValues) (cgroup.Limits, error) {
	var l cgroup.Limits
	var err error
	if s := fl.str("m"); s != "" {
		if l.Memory, err = cgroup.ParseMemory(s); err != nil {
			return l, err
		}
	}
	if s := fl.str("cpus"); s != "" {
		if l.CPUQuota, l.CPUPeriod, err = cgroup.ParseCPUs(s); err != nil {
			return l, err
		}
	}
	if fl.isSet("cpushare") {
		l.CPUShares = fl.u64("cpushare")
	}
	if s := fl.str("cpuset"); s != "" {
		if err := cgroup.ValidateCpuset(s); err != nil {
			return l, err
		}
		l.Cpuset = s
	}
	if fl.isSet("pids-limit") {
		if l.PidsLimit = fl.i64("pids-limit"); l.PidsLimit <= 0 {
			return l, fmt.Errorf("%w: --pids-limit %d: must be a positive number", cgroup.ErrInvalidLimit, l.PidsLimit)
		}
	}
	return l, l.Validate()
}

// validHostname accepts RFC 1123 host names.
func validHostname(h string) bool {
	if len(h) > 64 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// userEnv collects the user's variables: env files first, then -e, later ones winning.
// "-e KEY" without a value passes the host's KEY if it is set, as docker does.
func userEnv(files, flags []string) ([]string, error) {
	var env []string
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			kv, ok, err := envEntry(line)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("--env-file %s:%d: %w", path, n, err)
			}
			if ok {
				env = append(env, kv)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", path, err)
		}
	}
	for _, s := range flags {
		kv, ok, err := envEntry(s)
		if err != nil {
			return nil, fmt.Errorf("-e: %w", err)
		}
		if ok {
			env = append(env, kv)
		}
	}
	return env, nil
}

func envEntry(s string) (string, bool, error) {
	k, v, hasValue := strings.Cut(s, "=")
	// A key with a space or a control character (newline, DEL...) cannot be set or read by
	// a shell; a NUL cannot even pass through execve.
	if k == "" || strings.IndexFunc(k, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0 || strings.ContainsRune(v, 0) {
		return "", false, fmt.Errorf("%q: want KEY=VALUE: %w", s, container.ErrInvalidEnv)
	}
	if !hasValue {
		hv, ok := os.LookupEnv(k)
		if !ok {
			return "", false, nil
		}
		return k + "=" + hv, true, nil
	}
	return s, true, nil
}

// containerEnv is the container's whole environment: PATH, HOSTNAME, TERM with a terminal,
// then the user's variables overriding those. Never the host's environment. HOME, unless
// set here, comes from the user's passwd entry in the container (its init adds it).
func containerEnv(hostname string, tty bool, user []string) []string {
	env := []string{"PATH=" + container.DefaultPath}
	if hostname != "" {
		env = append(env, "HOSTNAME="+hostname)
	}
	if tty {
		env = append(env, "TERM=xterm")
	}
	return container.MergeEnv(env, user)
}

// runAttached runs a container in the foreground: with a terminal for -t, with stdin for -i,
// otherwise with only its output streamed, forwarding the signals sc catches. The exit code
// is the container's.
func runAttached(r container.Roots, spec container.Spec, sc *signalCatcher) error {
	a, err := newAttachment(spec.Tty, spec.Interactive, pty.Open)
	if err != nil {
		return err
	}
	defer a.close()
	// The init's parent-death signal is tied to the thread that forked it: main keeps its
	// goroutine on the main thread, which Go never ends. Once the init is forked, the
	// goroutine may leave that thread (locked to it, it costs two thread switches every time
	// it blocks): this process forks nothing else that must die with it. (A detached
	// container's watcher stays on it: it later execs the waiter, and an exec from another
	// thread would end the forking one, and with it the container.)
	stdio := a.stdio
	stdio.Forked = runtime.UnlockOSThread
	// Forward what the user's shell sends us to the container, as docker's sig-proxy does,
	// from before its command runs. (Catching them started with the process and ends
	// during Create, before the command is sent; one that came before that ended fockker
	// like a crash, whose leftovers the collector removes.)
	stdio.BeforeCommand = func() { sc.wait() }
	c, err := container.Create(r, spec, stdio)
	if err != nil {
		return err
	}
	sigs := sc.wait()
	if err := c.Start(); err != nil {
		if derr := c.Destroy(); derr != nil {
			logrus.Warnf("container %s: roll back: %v", c.Record.Name, derr)
		}
		return err
	}
	if spec.Tty {
		fmt.Fprintln(os.Stderr, say(msgStarted, c.Record.Name))
	}
	a.begin(spec.Interactive)
	done := make(chan int, 1)
	go func() { done <- c.Wait() }()
	code := a.wait(done, sigs, func(s os.Signal) error { return c.Signal(s) })
	if err := c.Finish(code); err != nil {
		return err
	}
	if code != 0 {
		return &container.ExitError{Code: code}
	}
	return nil
}

// attachment connects fockker's own standard streams to a process it runs: directly, or
// through a new pseudo-terminal whose slave the process gets.
type attachment struct {
	stdio   container.IO
	ptmx    *os.File      // our side of the terminal, nil without -t
	restore func()        // puts the user's terminal back as it was
	output  chan struct{} // closed once the terminal's output is drained
}

func newAttachment(tty, interactive bool, openPty func() (master, slave *os.File, err error)) (*attachment, error) {
	a := &attachment{stdio: container.IO{Stdout: os.Stdout, Stderr: os.Stderr}, restore: func() {}}
	if interactive {
		a.stdio.Stdin = os.Stdin
	}
	if !tty {
		return a, nil
	}
	master, slave, err := openPty()
	if err != nil {
		return nil, fmt.Errorf("allocate a terminal: %w", err)
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		if err := pty.InheritSize(os.Stdin, master); err != nil {
			logrus.Debugf("terminal size: %v", err)
		}
	}
	a.ptmx = master
	a.stdio = container.IO{Stdin: slave, Stdout: slave, Stderr: slave, Tty: true}
	return a, nil
}

// begin starts streaming once the process runs: our terminal goes raw and bytes flow both
// ways through the pty.
func (a *attachment) begin(interactive bool) {
	if a.ptmx == nil {
		return
	}
	a.stdio.Stdin.Close() // the process holds the slave now; EOF reaches us when it is done
	if term.IsTerminal(int(os.Stdin.Fd())) {
		if old, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			a.restore = func() { _ = term.Restore(int(os.Stdin.Fd()), old) }
		}
	}
	a.output = make(chan struct{})
	go func() {
		_, _ = io.Copy(os.Stdout, a.ptmx) // ends with EIO once every slave is closed
		close(a.output)
	}()
	if interactive {
		go func() {
			_, _ = io.Copy(a.ptmx, os.Stdin)
			_, _ = a.ptmx.Write([]byte{4}) // our stdin ended: the terminal's EOF (^D)
		}()
	}
}

// wait forwards signals to the process until done delivers its exit code, then drains the
// terminal's output.
func (a *attachment) wait(done <-chan int, sigs <-chan os.Signal, forward func(os.Signal) error) int {
	for {
		select {
		case code := <-done:
			if a.output != nil {
				<-a.output
			}
			return code
		case s := <-sigs:
			if s == unix.SIGWINCH {
				if a.ptmx != nil {
					_ = pty.InheritSize(os.Stdin, a.ptmx)
				}
				continue
			}
			if err := forward(s); err != nil {
				logrus.Debugf("forward %v: %v", s, err)
			}
		}
	}
}

// close restores the user's terminal and releases the pty; safe on every exit path.
func (a *attachment) close() {
	a.restore()
	if a.ptmx != nil {
		a.ptmx.Close()
		a.stdio.Stdin.Close()
	}
}

// signalCatcher catches the signals fockker passes on to what it runs. Catching them is
// started in the background: for each signal the Go runtime makes a round trip to its
// signal thread (~1 ms for all of them here), which then overlaps with reading the flags.
type signalCatcher struct {
	ch   chan os.Signal
	done chan struct{}
}

// signalsKey is the context key of the signalCatcher that main started.
type signalsKey struct{}

// withSignals starts catching the signals for the command about to run, args[1] if it is
// one that passes them on (run, exec): before the command line is even parsed, so that the
// catching overlaps that too. They stay caught until the process ends with the command:
// stopping costs the same round trips as starting.
func withSignals(ctx context.Context, args []string) context.Context {
	if len(args) < 2 || (args[1] != "run" && args[1] != "exec") {
		return ctx
	}
	return context.WithValue(ctx, signalsKey{}, catchSignals())
}

// signalsOf returns the signalCatcher main started for this command or, when global flags
// hid the command from main, one started now. What runs attached keeps the signals caught
// until the process ends; what detaches stops catching them (see stop).
func signalsOf(ctx context.Context) *signalCatcher {
	if sc, ok := ctx.Value(signalsKey{}).(*signalCatcher); ok {
		return sc
	}
	return catchSignals()
}

// catchSignals starts catching the signals; call wait before anything that must not be
// interrupted without them being passed on, and stop at the end.
func catchSignals() *signalCatcher {
	c := &signalCatcher{ch: make(chan os.Signal, 16), done: make(chan struct{})}
	go func() {
		signal.Notify(c.ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
		close(c.done)
	}()
	return c
}

// wait returns the channel of caught signals once all of them are caught.
func (c *signalCatcher) wait() <-chan os.Signal {
	<-c.done
	return c.ch
}

// stop stops catching the signals: a detached run or exec has nothing to pass them on to,
// and ^C or a SIGTERM must end it as they end any command.
func (c *signalCatcher) stop() {
	<-c.done
	signal.Stop(c.ch)
}

// execAction is `fockker exec`: run a command in a running container.
func execAction(ctx context.Context, cmd *cli.Command) error {
	sc := signalsOf(ctx)
	r, err := roots(cmd)
	if err != nil {
		return err
	}
	args := cmd.Args().Slice()
	if len(args) < 2 {
		return errors.New("exec: usage: fockker exec [flags] NAME COMMAND [ARG...]")
	}
	tty := cmd.Bool("it") || cmd.Bool("t")
	interactive := cmd.Bool("it") || cmd.Bool("i")
	detach := cmd.Bool("d")
	if detach && (tty || interactive) {
		return errors.New("exec: -d cannot be combined with -i/-t/-it")
	}
	user, err := userEnv(nil, cmd.StringSlice("e"))
	if err != nil {
		return err
	}
	proc, err := container.ExecCommand(r, args[0], container.ExecOptions{
		Args: args[1:], Env: user, Cwd: cmd.String("w"), Tty: tty, Detach: detach,
	})
	if err != nil {
		return err
	}
	defer proc.Close()
	rec := proc.Record
	if detach {
		sc.stop()
		// Returns once the command runs, or with why it could not be started.
		proc.Stderr = os.Stderr
		if err := proc.Start(); err != nil {
			return fmt.Errorf("exec in %s: %w", rec.Name, err)
		}
		_ = proc.Wait() // the exit status is in ProcessState
		if code := container.ExitCodeOf(proc.ProcessState); code != 0 {
			return &container.ExitError{Code: code}
		}
		return nil
	}
	a, err := newAttachment(tty, interactive, rec.OpenPty)
	if err != nil {
		return err
	}
	defer a.close()
	// A nil *os.File stored in the io.Reader would not be nil to os/exec: the command would
	// get a closed fd 0 (which its first socket or file then takes) instead of /dev/null.
	if a.stdio.Stdin != nil {
		proc.Stdin = a.stdio.Stdin
	}
	proc.Stdout, proc.Stderr = a.stdio.Stdout, a.stdio.Stderr
	sigs := sc.wait()
	if err := proc.Start(); err != nil {
		return fmt.Errorf("exec in %s: %w", rec.Name, err)
	}
	a.begin(interactive)
	done := make(chan int, 1)
	go func() {
		_ = proc.Wait()
		done <- container.ExitCodeOf(proc.ProcessState)
	}()
	code := a.wait(done, sigs, func(s os.Signal) error {
		// Without a terminal, ^C and ^\ from the user's terminal already reached the exec'd
		// process, which shares our process group: do not deliver them twice.
		if !tty && (s == unix.SIGINT || s == unix.SIGQUIT) {
			return nil
		}
		return proc.Process.Signal(s)
	})
	if code != 0 {
		return &container.ExitError{Code: code}
	}
	return nil
}
