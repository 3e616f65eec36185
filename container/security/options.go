package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	mseccomp "github.com/moby/profiles/seccomp"
)

// Options are a container's security settings as the user chose them, validated; they are
// stored in the container's record and every process of the container (init and exec) is
// restricted according to them.
type Options struct {
	// Privileged: every capability fockker holds, no seccomp filter, no masked or read-only
	// paths, /sys writable, every device allowed.
	Privileged bool `json:"privileged,omitempty"`
	// CapAdd and CapDrop are canonical capability names ("CAP_NET_ADMIN") or "ALL".
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// NoNewPrivileges sets no_new_privs: setuid binaries and file capabilities give nothing.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// ReadOnlyRootfs mounts the root filesystem read-only (volumes, /dev, /proc, /sys keep
	// their own modes).
	ReadOnlyRootfs bool `json:"readOnlyRootfs,omitempty"`
	// User is -u: USER[:GROUP], resolved in the container's /etc/passwd and /etc/group.
	User string `json:"user,omitempty"`
	// Seccomp is "" for docker's default profile, SeccompUnconfined for none, or the JSON of
	// a profile (read when the container was created, as docker keeps it).
	Seccomp string `json:"seccomp,omitempty"`

	// compiled is what ParseFlags already worked out, so the process that parsed the flags
	// does not compile the filter twice; it does not travel with the JSON.
	compiled *Process
	// profile is Seccomp's profile as parseSecurityOpt parsed it to check it, so that
	// ParseFlags compiles it without parsing it again (as long as the compile itself).
	profile *mseccomp.Seccomp
}

// Flags are the raw values of run's security flags.
type Flags struct {
	Privileged  bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	ReadOnly    bool
	User        string
}

// ParseFlags validates run's security flags the way docker does and returns the options to
// store. A seccomp profile file is read here, on the host, and must compile into a filter
// for the container's capabilities.
func ParseFlags(f Flags) (Options, error) {
	o := Options{Privileged: f.Privileged, ReadOnlyRootfs: f.ReadOnly, User: f.User}
	var err error
	if o.CapAdd, err = NormalizeCaps(f.CapAdd); err != nil {
		return Options{}, fmt.Errorf("--cap-add: %w", err)
	}
	if o.CapDrop, err = NormalizeCaps(f.CapDrop); err != nil {
		return Options{}, fmt.Errorf("--cap-drop: %w", err)
	}
	if err := ValidateUserSpec(f.User); err != nil {
		return Options{}, err
	}
	for _, opt := range f.SecurityOpt {
		if err := o.parseSecurityOpt(opt, readProfile); err != nil {
			return Options{}, err
		}
	}
	p, err := o.Process()
	if err != nil {
		return Options{}, err
	}
	o.compiled, o.profile = p, nil
	return o, nil
}

// parseSecurityOpt applies one --security-opt: no-new-privileges[=BOOL] or
// seccomp=unconfined|builtin|PATH ("KEY:VALUE" is accepted too, as docker still does).
func (o *Options) parseSecurityOpt(opt string, read func(string) ([]byte, error)) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: --security-opt %q: %s", ErrInvalidSecurityOpt, opt, why)
	}
	if opt == "no-new-privileges" {
		o.NoNewPrivileges = true
		return nil
	}
	key, value, ok := strings.Cut(opt, "=")
	if !ok {
		key, value, ok = strings.Cut(opt, ":")
	}
	if !ok {
		return bad("want no-new-privileges[=true|false] or seccomp=unconfined|PROFILE.json")
	}
	switch key {
	case "no-new-privileges":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return bad("want true or false")
		}
		o.NoNewPrivileges = b
	case "seccomp":
		switch value {
		case "":
			return bad("a profile path, unconfined or builtin is required")
		case SeccompUnconfined:
			o.Seccomp, o.profile = SeccompUnconfined, nil
		case SeccompBuiltin:
			o.Seccomp, o.profile = "", nil
		default:
			data, err := read(value)
			if err != nil {
				return bad(err.Error())
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, data); err != nil {
				return bad(fmt.Sprintf("%s: %v", value, err))
			}
			p, err := ParseProfile(buf.Bytes())
			if err != nil {
				return bad(fmt.Sprintf("%s: %v", value, err))
			}
			o.Seccomp, o.profile = buf.String(), p
		}
	case "label", "apparmor", "systempaths", "writable-cgroups", "mask", "unmask":
		return bad("not supported by fockker")
	default:
		return bad("unknown option")
	}
	return nil
}

// readProfile reads a seccomp profile file, refusing more than MaxProfileSize bytes.
func readProfile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxProfileSize)
	}
	return data, nil
}

// Process is what every process of a container is restricted to, computed on the host from
// Options: the parts that do not depend on the container's files.
type Process struct {
	// Caps is the container's capability set as a mask: the bounding set, and also the
	// effective and permitted sets when the process runs as root (see CapSetsFor).
	Caps            uint64  `json:"caps"`
	NoNewPrivileges bool    `json:"noNewPrivileges,omitempty"`
	Seccomp         *Filter `json:"seccomp,omitempty"`
	User            string  `json:"user,omitempty"`
	ReadOnlyRootfs  bool    `json:"readOnlyRootfs,omitempty"`
	Privileged      bool    `json:"privileged,omitempty"`
}

// Process computes the restrictions of o on this machine: the capability set (which fockker
// must itself hold; for --privileged, all that it holds) and the compiled seccomp filter.
func (o Options) Process() (*Process, error) {
	if o.compiled != nil {
		return o.compiled, nil
	}
	held, err := ownPermitted()
	if err != nil {
		return nil, err
	}
	// Only --privileged and --cap-add ALL start from every capability the kernel has (see
	// tweakCapabilities); listing them by name is wasted work for any other container.
	var supported []string
	if o.Privileged || slices.Contains(o.CapAdd, allCaps) {
		if supported, err = SupportedCapabilities(); err != nil {
			return nil, err
		}
	}
	return o.process(held, supported)
}

func (o Options) process(held uint64, supported []string) (*Process, error) {
	caps, err := CapMask(tweakCapabilities(DefaultCapabilities(), supported, o.CapAdd, o.CapDrop, o.Privileged))
	if err != nil {
		return nil, err
	}
	if o.Privileged {
		caps &= held
	} else if missing := caps &^ held; missing != 0 {
		return nil, fmt.Errorf("%w: %s", ErrCapabilityNotHeld, strings.Join(capNames(missing), ", "))
	}
	p := &Process{
		Caps:            caps,
		NoNewPrivileges: o.NoNewPrivileges,
		User:            o.User,
		ReadOnlyRootfs:  o.ReadOnlyRootfs,
		Privileged:      o.Privileged,
	}
	if !o.Privileged && o.Seccomp != SeccompUnconfined {
		if p.Seccomp, err = o.filter(capNames(caps)); err != nil {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
	}
	return p, nil
}

// filter compiles o's seccomp profile for a container with caps: the one parseSecurityOpt
// parsed if there is one, else Seccomp.
func (o Options) filter(caps []string) (*Filter, error) {
	if o.profile != nil {
		return compileFor(o.profile, caps)
	}
	return BuildFilter(o.Seccomp, caps)
}

// CapSets returns the capability sets of a process of the container running as uid.
func (p *Process) CapSets(uid uint32) CapSets { return CapSetsFor(p.Caps, uid) }
