package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/FishingRodd/fockker/container"
	"github.com/FishingRodd/fockker/container/image"
	"github.com/FishingRodd/fockker/network"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v3"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func newApp() *cli.Command {
	app := &cli.Command{
		Name:    "fockker",
		Usage:   "a small container engine: overlayfs images, namespaces, cgroups, bridge networks",
		Version: version,
		// Values of repeatable flags (-e A=1,2) are never split on commas.
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(context.Context, *cli.Command, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-root", Value: container.DefaultStateRoot, Usage: "where container records live",
				Sources: cli.EnvVars("FOCKKER_STATE_ROOT")},
			&cli.StringFlag{Name: "image-root", Value: container.DefaultImageRoot, Usage: "where images and container layers live",
				Sources: cli.EnvVars("FOCKKER_IMAGE_ROOT")},
			&cli.BoolFlag{Name: "debug", Usage: "print diagnostics on stderr"},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			logrus.SetOutput(os.Stderr)
			logrus.SetLevel(logrus.WarnLevel)
			if cmd.Bool("debug") {
				logrus.SetLevel(logrus.DebugLevel)
			}
			return ctx, nil
		},
		Commands: []*cli.Command{
			runCommand(),
			execCommand(),
			psCommand(),
			stopCommand(),
			rmCommand(),
			logsCommand(),
			inspectCommand(),
			networkCommand(),
			imagesCommand(),
			imageCommand(),
			commitCommand(),
			exportCommand(),
			importCommand(),
			loadCommand(),
			systemCommand(),
		},
	}
	argsNeverHelp(app.Commands)
	return app
}

// argsNeverHelp stops the CLI library from giving every command a "help" (alias "h")
// subcommand where it takes operands: otherwise "fockker rm h" or "fockker exec help sh"
// printed help instead of reaching a container (or network) of that name. Commands with
// subcommands (network, image) keep theirs; --help works everywhere.
func argsNeverHelp(cmds []*cli.Command) {
	for _, c := range cmds {
		if len(c.Commands) == 0 {
			c.HideHelpCommand = true
			continue
		}
		argsNeverHelp(c.Commands)
	}
}

// roots reads the installation's roots from the global flags.
func roots(cmd *cli.Command) (container.Roots, error) {
	r := container.Roots{State: cmd.String("state-root"), Image: cmd.String("image-root")}
	return r, r.Validate()
}

func oneArg(n int) *int { return &n }

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "create and start a container",
		ArgsUsage: "IMAGE [COMMAND [ARG...]]",
		Description: "Everything after IMAGE is the container's command, flags included; it reaches the\n" +
			"container exactly, never re-split on spaces. Without -d or -it the container runs in the\n" +
			"foreground with its output streamed and fockker exits with its exit code.",
		StopOnNthArg: oneArg(1),
		// -e A=1,2 is one variable: values are never split on commas.
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "it", Aliases: []string{"ti"}, Usage: "interactive with a terminal (-i and -t)"},
			&cli.BoolFlag{Name: "i", Aliases: []string{"interactive"}, Usage: "keep stdin attached"},
			&cli.BoolFlag{Name: "t", Aliases: []string{"tty"}, Usage: "allocate a pseudo-terminal"},
			&cli.BoolFlag{Name: "d", Aliases: []string{"detach"}, Usage: "run in the background and print the start message"},
			&cli.StringFlag{Name: "name", Usage: "container name ([a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}); default: its 10-digit ID"},
			&cli.StringSliceFlag{Name: "v", Aliases: []string{"volume"}, Usage: "bind mount HOST:CONTAINER[:ro] (repeatable)"},
			&cli.StringFlag{Name: "m", Aliases: []string{"memory"}, Usage: "memory limit, e.g. 100m, 1g, or bytes"},
			&cli.StringFlag{Name: "cpus", Usage: "CPU limit in CPUs, e.g. 0.5"},
			&cli.Uint64Flag{Name: "cpushare", Aliases: []string{"cpu-shares"}, Usage: "relative CPU weight (cgroup v1 shares, converted on v2)"},
			&cli.StringFlag{Name: "cpuset", Aliases: []string{"cpuset-cpus"}, Usage: "CPUs the container may use, e.g. 0-1 or 0,2"},
			&cli.Int64Flag{Name: "pids-limit", Usage: "maximum number of processes"},
			&cli.StringSliceFlag{Name: "e", Aliases: []string{"env"}, Usage: "set KEY=VALUE in the container (repeatable)"},
			&cli.StringSliceFlag{Name: "env-file", Usage: "read KEY=VALUE lines from a file (repeatable)"},
			&cli.StringFlag{Name: "w", Aliases: []string{"workdir"}, Usage: "working directory inside the container (default: the image's)"},
			&cli.StringFlag{Name: "entrypoint", Usage: "replace the image's Entrypoint (and drop its Cmd); \"\" for none"},
			&cli.StringFlag{Name: "hostname", Usage: "container hostname (default: the container name)"},
			&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
			&cli.StringFlag{Name: "net", Aliases: []string{"network"}, Value: network.DefaultName,
				Usage: "network to join: a fockker network, none (only lo) or host (the host's)"},
			&cli.StringSliceFlag{Name: "p", Aliases: []string{"publish"}, Usage: "publish HOST:CONTAINER[/tcp|/udp] (repeatable)"},
			&cli.StringFlag{Name: "u", Aliases: []string{"user"}, Usage: "run as USER[:GROUP] (names from the container's /etc/passwd and /etc/group, or ids)"},
			&cli.StringSliceFlag{Name: "cap-add", Usage: "add a capability, e.g. NET_ADMIN, or ALL (repeatable)"},
			&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop a capability, e.g. CHOWN, or ALL (repeatable)"},
			&cli.BoolFlag{Name: "privileged", Usage: "every capability, no seccomp filter, no masked paths, writable /sys, all devices"},
			&cli.BoolFlag{Name: "read-only", Usage: "mount the container's root filesystem read-only"},
			&cli.StringSliceFlag{Name: "security-opt", Usage: "no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json (repeatable)"},
		},
		Action: runAction,
	}
}

func execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command in a running container",
		ArgsUsage: "NAME|ID COMMAND [ARG...]",
		Description: "The command joins the container's mount, UTS, IPC, network and PID namespaces and its\n" +
			"cgroup, with the container's environment plus -e. A container that is not running gets\n" +
			"nothing: exit 125, and the command runs nowhere.",
		StopOnNthArg:              oneArg(1),
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "it", Aliases: []string{"ti"}, Usage: "interactive with a terminal (-i and -t)"},
			&cli.BoolFlag{Name: "i", Aliases: []string{"interactive"}, Usage: "keep stdin attached"},
			&cli.BoolFlag{Name: "t", Aliases: []string{"tty"}, Usage: "allocate a pseudo-terminal"},
			&cli.BoolFlag{Name: "d", Aliases: []string{"detach"}, Usage: "run in the background"},
			&cli.StringSliceFlag{Name: "e", Aliases: []string{"env"}, Usage: "set KEY=VALUE (repeatable)"},
			&cli.StringFlag{Name: "w", Aliases: []string{"workdir"}, Usage: "working directory inside the container"},
		},
		Action: execAction,
	}
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list containers",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "print IDs only"},
			&cli.StringFlag{Name: "format", Usage: "table or json"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() > 0 {
				return fmt.Errorf("ps takes no arguments, got %q", cmd.Args().Slice())
			}
			asJSON, err := jsonFormat(cmd)
			if err != nil {
				return err
			}
			// What crashes left behind goes first, cheaply, at most every few seconds, and
			// never waiting for runs in progress (see container.Prune); its failure does not
			// stop ps, which reconciles every record with the kernel anyway.
			if err := container.PruneLazily(r, container.LazyPruneInterval); err != nil {
				logrus.Debugf("prune: %v", err)
			}
			recs, err := container.List(r)
			if err != nil {
				return err
			}
			return printPs(os.Stdout, recs, cmd.Bool("q"), asJSON)
		},
	}
}

// jsonFormat checks --format (table or json) and reports whether it asks for JSON.
func jsonFormat(cmd *cli.Command) (bool, error) {
	switch f := cmd.String("format"); f {
	case "", "table":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, fmt.Errorf("--format %q: want table or json", f)
	}
}

// printJSON writes a list as indented JSON; an empty list is [], never null.
func printJSON[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(list)
}

// printPs writes the seed's table (ID NAME PID STATUS COMMAND CREATED), IDs, or JSON.
func printPs(w io.Writer, recs []*container.Record, quiet, asJSON bool) error {
	if asJSON {
		return printJSON(w, recs)
	}
	if quiet {
		for _, r := range recs {
			fmt.Fprintln(w, r.ID)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPID\tSTATUS\tCOMMAND\tCREATED\tIP")
	for _, r := range recs {
		pid := "-"
		if r.Status != container.Stopped && r.Pid > 0 {
			pid = fmt.Sprint(r.Pid)
		}
		status := string(r.Status)
		if r.Status == container.Stopped && r.ExitCode != nil {
			status = fmt.Sprintf("stopped (%d)", *r.ExitCode)
		}
		ip := r.IP
		if ip == "" {
			ip = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, pid, status, commandLine(r.Command), r.CreateTime, ip)
	}
	return tw.Flush()
}

// commandLine shows argv in one column, quoting arguments that contain spaces.
func commandLine(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			a = fmt.Sprintf("%q", a)
		}
		parts[i] = a
	}
	s := strings.Join(parts, " ")
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// forEach runs fn for every container named on the command line, reporting each failure and
// returning an error if any failed (like docker stop/rm with several names).
func forEach(cmd *cli.Command, fn func(r container.Roots, ref string) error) error {
	r, err := roots(cmd)
	if err != nil {
		return err
	}
	if cmd.NArg() == 0 {
		return fmt.Errorf("%s: at least one container name or ID is required", cmd.Name)
	}
	failed := 0
	for _, ref := range cmd.Args().Slice() {
		if err := fn(r, ref); err != nil {
			fmt.Fprintln(os.Stderr, "fockker:", err)
			failed++
		}
	}
	if failed > 0 {
		return &container.ExitError{Code: container.ExitEngine}
	}
	return nil
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "stop running containers: SIGTERM, then SIGKILL after the timeout",
		ArgsUsage: "NAME|ID...",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "t", Aliases: []string{"time"}, Value: 10, Usage: "seconds to wait before SIGKILL"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			secs := cmd.Int("t")
			if secs < 0 {
				return fmt.Errorf("-t %d: must not be negative", secs)
			}
			if int64(secs) > math.MaxInt64/int64(time.Second) {
				return fmt.Errorf("-t %d: too large", secs)
			}
			return forEach(cmd, func(r container.Roots, ref string) error {
				rec, stopped, err := container.Stop(r, ref, time.Duration(secs)*time.Second)
				if err != nil {
					return err
				}
				if stopped {
					fmt.Println(say(msgStopped, rec.Name, rec.ID))
				} else {
					fmt.Println(say(msgNotRunning, rec.Name, rec.ID))
				}
				return nil
			})
		},
	}
}

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove containers (a running one only with -f)",
		ArgsUsage: "NAME|ID...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "f", Aliases: []string{"force"}, Usage: "kill a running container first"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return forEach(cmd, func(r container.Roots, ref string) error {
				rec, err := container.Lookup(r, ref)
				if err != nil {
					return err
				}
				if err := container.Remove(r, rec.Name, cmd.Bool("f")); err != nil {
					return err
				}
				fmt.Println(say(msgRemoved, rec.Name, rec.ID))
				return nil
			})
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print the output of a detached container",
		ArgsUsage: "NAME|ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "f", Aliases: []string{"follow"}, Usage: "keep printing until the container stops"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() != 1 {
				return errors.New("logs: exactly one container name or ID is required")
			}
			return container.Logs(ctx, r, cmd.Args().First(), cmd.Bool("f"), os.Stdout)
		},
	}
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "print containers' full records as JSON",
		ArgsUsage: "NAME|ID...",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() == 0 {
				return errors.New("inspect: at least one container name or ID is required")
			}
			var recs []*container.Record
			for _, ref := range cmd.Args().Slice() {
				rec, err := container.Lookup(r, ref)
				if err != nil {
					return err
				}
				recs = append(recs, rec)
			}
			return printJSON(os.Stdout, recs)
		},
	}
}

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "manage container networks (bridge driver)",
		Commands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a bridge network; without --subnet a free /24 is picked",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "bridge", Usage: "network driver (only bridge)"},
					&cli.StringFlag{Name: "subnet", Usage: "subnet in CIDR form, e.g. 10.10.0.0/24 (must not overlap any other network or host route)"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					r, err := roots(cmd)
					if err != nil {
						return err
					}
					if cmd.NArg() != 1 {
						return errors.New("network create: exactly one network name is required")
					}
					n, err := network.NewManager(r.State).Create(cmd.Args().First(), cmd.String("driver"), cmd.String("subnet"))
					if err != nil {
						return err
					}
					fmt.Println(say(msgNetworkCreated, n.Name))
					return nil
				},
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list networks",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Usage: "table or json"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					r, err := roots(cmd)
					if err != nil {
						return err
					}
					asJSON, err := jsonFormat(cmd)
					if err != nil {
						return err
					}
					nets, err := network.NewManager(r.State).List()
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(os.Stdout, nets)
					}
					tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
					fmt.Fprintln(tw, "Name\tIpRange\tType")
					for _, n := range nets {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, n.IPRange(), n.Driver)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove networks (refused while containers are attached, unless -f)",
				ArgsUsage: "NAME...",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "f", Aliases: []string{"force"}, Usage: "disconnect attached containers first"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return forEach(cmd, func(r container.Roots, name string) error {
						if err := network.NewManager(r.State).Remove(name, cmd.Bool("f")); err != nil {
							return err
						}
						fmt.Println(say(msgNetworkRemoved, name))
						return nil
					})
				},
			},
		},
	}
}

func imageListFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "print names only"},
		&cli.StringFlag{Name: "format", Usage: "table or json"},
	}
}

// imagesAction lists the installation's images.
func imagesAction(ctx context.Context, cmd *cli.Command) error {
	r, err := roots(cmd)
	if err != nil {
		return err
	}
	if cmd.NArg() > 0 {
		return fmt.Errorf("images takes no arguments, got %q", cmd.Args().Slice())
	}
	asJSON, err := jsonFormat(cmd)
	if err != nil {
		return err
	}
	imgs, err := container.Images(r).List()
	if err != nil {
		return err
	}
	return printImages(os.Stdout, imgs, cmd.Bool("q"), asJSON)
}

// printImages writes NAME SIZE CREATED SOURCE, names only, or JSON.
func printImages(w io.Writer, imgs []*image.Image, quiet, asJSON bool) error {
	if asJSON {
		return printJSON(w, imgs)
	}
	if quiet {
		for _, i := range imgs {
			fmt.Fprintln(w, i.Name)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCREATED\tSOURCE")
	for _, i := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, image.HumanSize(i.Size), i.Created.Local().Format("2006-01-02 15:04:05"), i.Source)
	}
	return tw.Flush()
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:   "images",
		Usage:  "list images (also: image ls)",
		Flags:  imageListFlags(),
		Action: imagesAction,
	}
}

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "manage images",
		Commands: []*cli.Command{
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list images",
				Flags:   imageListFlags(),
				Action:  imagesAction,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove images (refused while a container, running or stopped, uses one)",
				ArgsUsage: "IMAGE...",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return forEach(cmd, func(r container.Roots, name string) error {
						if err := container.Images(r).Remove(name); err != nil {
							return err
						}
						fmt.Println(say(msgImageRemoved, name))
						return nil
					})
				},
			},
		},
	}
}

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:  "commit",
		Usage: "save a container's file system as an image (IMAGE.tar under the image root)",
		Description: "The image keeps the config (Env, Entrypoint, Cmd, WorkingDir, User) of the image the\n" +
			"container was created from. A running container keeps running while it is saved.",
		ArgsUsage: "CONTAINER IMAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "f", Aliases: []string{"force"}, Usage: "replace an existing image of that name (never one a container uses)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() != 2 {
				return errors.New("commit: usage: fockker commit [-f] CONTAINER IMAGE")
			}
			m, err := container.Commit(r, cmd.Args().Get(0), cmd.Args().Get(1), cmd.Bool("f"))
			if err != nil {
				return err
			}
			fmt.Println(say(msgImageCommitted, m.Name, cmd.Args().Get(0)))
			return nil
		},
	}
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a container's file system as a tar (what import reads)",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "o", Aliases: []string{"output"}, Usage: "file to write (created atomically); default: stdout, if it is not a terminal"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() != 1 {
				return errors.New("export: usage: fockker export CONTAINER [-o FILE.tar]")
			}
			ref, out := cmd.Args().First(), cmd.String("o")
			if out == "" || out == "-" {
				if term.IsTerminal(int(os.Stdout.Fd())) {
					return errors.New("export: refusing to write a tar to a terminal: use -o FILE.tar or redirect stdout")
				}
				return container.Export(r, ref, os.Stdout)
			}
			return image.WriteFile(out, func(w io.Writer) error { return container.Export(r, ref, w) })
		},
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "make an image from a root file system tar (plain or gzip; - for stdin)",
		ArgsUsage: "FILE.tar IMAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "f", Aliases: []string{"force"}, Usage: "replace an existing image of that name (never one a container uses)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() != 2 {
				return errors.New("import: usage: fockker import [-f] FILE.tar IMAGE")
			}
			path, name := cmd.Args().Get(0), cmd.Args().Get(1)
			in, source := os.Stdin, "import -"
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				abs, _ := filepath.Abs(path)
				in, source = f, "import "+abs
			}
			if _, err := container.Images(r).Import(in, name, image.Options{Force: cmd.Bool("f"), Source: source}); err != nil {
				return err
			}
			fmt.Println(say(msgImageImported, name))
			return nil
		},
	}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "load images from an OCI image layout (tar or directory) or a docker save / podman save archive",
		Description: "Layers are applied in order with whiteouts honoured and checked against the config's\n" +
			"diff IDs; the config (Env, Entrypoint, Cmd, WorkingDir, User) is kept for run. An image is\n" +
			"named after its repository (docker.io/library/alpine:3.19 loads as alpine) unless --name\n" +
			"says otherwise. A failed load leaves nothing.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "i", Aliases: []string{"input"}, Usage: "the archive (or OCI layout directory) to read", Required: true},
			&cli.StringFlag{Name: "name", Usage: "name of the image (for an archive holding one image)"},
			&cli.BoolFlag{Name: "f", Aliases: []string{"force"}, Usage: "replace existing images of those names (never one a container uses)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			r, err := roots(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() > 0 {
				return fmt.Errorf("load takes no arguments, got %q (the archive goes with -i)", cmd.Args().Slice())
			}
			opts := image.LoadOptions{Name: cmd.String("name"), Force: cmd.Bool("f")}
			if term.IsTerminal(int(os.Stdout.Fd())) {
				opts.Progress = os.Stdout
			}
			metas, err := container.Images(r).Load(cmd.String("i"), opts)
			if err != nil {
				return err
			}
			for _, m := range metas {
				fmt.Println(say(msgImageLoaded, m.Name))
			}
			return nil
		},
	}
}

func systemCommand() *cli.Command {
	return &cli.Command{
		Name:  "system",
		Usage: "manage the installation",
		Commands: []*cli.Command{
			{
				Name:  "prune",
				Usage: "remove what crashed or killed runs left behind, and print it",
				Description: "Removes this installation's orphans: temporary state directories, layer directories\n" +
					"and network endpoints, addresses, veths and port rules whose container has no record,\n" +
					"cgroups of stopped containers, watchers of containers without a record, and mounts\n" +
					"left on layer directories; containers whose process died unrecorded are recorded as\n" +
					"stopped and their ports freed. Records, stopped containers, images and networks stay.\n" +
					"Runs in progress are never disturbed: prune waits for them (up to --wait).",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "wait", Value: 10 * time.Second, Usage: "how long to wait for runs being created"},
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					r, err := roots(cmd)
					if err != nil {
						return err
					}
					if cmd.NArg() > 0 {
						return fmt.Errorf("system prune takes no arguments, got %q", cmd.Args().Slice())
					}
					if cmd.Duration("wait") < 0 {
						return fmt.Errorf("--wait %s: must not be negative", cmd.Duration("wait"))
					}
					pruned, err := container.Prune(r, container.PruneOptions{Full: true, Wait: cmd.Duration("wait")})
					for _, p := range pruned {
						fmt.Println("removed", p)
					}
					if err == nil && len(pruned) == 0 {
						fmt.Println("nothing to remove")
					}
					return err
				},
			},
		},
	}
}
