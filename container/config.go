// Package container creates, runs, lists and removes fockker containers: overlayfs rootfs,
// namespaces, cgroups, the on-disk record and the watcher of detached containers.
package container

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/FishingRodd/fockker/container/cgroup"
	"github.com/FishingRodd/fockker/container/security"
	"github.com/FishingRodd/fockker/internal/ident"
	"github.com/FishingRodd/fockker/network"
)

// Default roots, as in the seed: state under /var/run/fockker, images and layers under /var/root.
const (
	DefaultStateRoot = "/var/run/fockker"
	DefaultImageRoot = "/var/root"
	// DefaultCgroupParent is the cgroup every container's own cgroup lives under.
	DefaultCgroupParent = "fockker"

	configName = "config.json"
	logName    = "container.log"

	// DefaultPath is the PATH a container gets unless the user sets one.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Status is a container's lifecycle state as recorded and as shown by ps.
type Status string

// The states a container goes through.
const (
	Created Status = "created"
	Running Status = "running"
	Stopped Status = "stopped"
	// Damaged marks a record that cannot be read: what a crash of the machine can leave of
	// a record being written (see Store.Load). It is never written.
	Damaged Status = "damaged"
)

// Roots says where an installation keeps its state and its images.
type Roots struct {
	State string // container records: <State>/<name>/config.json
	Image string // images and per-container layers
}

// ContainerDir is the state directory of one container.
func (r Roots) ContainerDir(name string) string { return filepath.Join(r.State, name) }

// LogPath is where a detached container's stdout and stderr go.
func (r Roots) LogPath(name string) string { return filepath.Join(r.State, name, logName) }

// ImageDir is the unpacked root filesystem of an image.
func (r Roots) ImageDir(image string) string { return filepath.Join(r.Image, image) }

// MountPoint is where every container's overlay root is mounted, each in its own mount
// namespace (the seed's mnt/<name>, one directory for all: a directory per container would
// only cost a mkdir and an rmdir per container).
func (r Roots) MountPoint() string { return filepath.Join(r.Image, "mnt") }

// legacyMergedDir is the per-container mount point of versions before MountPoint, removed with
// a container they made.
func (r Roots) legacyMergedDir(name string) string { return filepath.Join(r.Image, "mnt", name) }

// UpperDir is the writable layer of a container (the seed's writeLayer/<name>).
func (r Roots) UpperDir(name string) string { return filepath.Join(r.Image, "writeLayer", name) }

// WorkDir is overlayfs's work directory of a container (the seed's workLayer/<name>).
func (r Roots) WorkDir(name string) string { return filepath.Join(r.Image, "workLayer", name) }

// Validate refuses roots that overlayfs options or our layout cannot carry safely.
func (r Roots) Validate() error {
	for _, p := range []struct{ what, path string }{{"state root", r.State}, {"image root", r.Image}} {
		if p.path == "" || !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s %q: %w", p.what, p.path, ErrRelativeRoot)
		}
		if strings.ContainsAny(p.path, ",:\n") {
			return fmt.Errorf("%s %q: must not contain ',', ':' or newlines (overlayfs options): %w", p.what, p.path, ErrInvalidRoot)
		}
	}
	return nil
}

// ValidateName checks a container or image name before it touches any path.
func ValidateName(kind, name string) error {
	if !ident.Valid(name) {
		return fmt.Errorf("%s name %q: must match %s: %w", kind, name, ident.Rule, ErrInvalidName)
	}
	return nil
}

// Volume is one bind mount from the host into the container.
type Volume struct {
	Host     string `json:"host"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// String renders the volume the way the user wrote it.
func (v Volume) String() string {
	s := v.Host + ":" + v.Target
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

// ParseVolume parses HOST:CTR[:ro|:rw]. Both paths must be absolute; CTR may not be "/".
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	var v Volume
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return v, fmt.Errorf("volume %q: unknown mode %q (want ro or rw): %w", s, parts[2], ErrInvalidVolume)
		}
	default:
		return v, fmt.Errorf("volume %q: want HOST:CONTAINER[:ro]: %w", s, ErrInvalidVolume)
	}
	v.Host, v.Target = parts[0], parts[1]
	if strings.ContainsRune(s, 0) {
		return v, fmt.Errorf("volume %q: paths must not contain NUL bytes: %w", s, ErrInvalidVolume)
	}
	if !filepath.IsAbs(v.Host) {
		return v, fmt.Errorf("volume %q: host path must be absolute: %w", s, ErrInvalidVolume)
	}
	if !filepath.IsAbs(v.Target) {
		return v, fmt.Errorf("volume %q: container path must be absolute: %w", s, ErrInvalidVolume)
	}
	v.Host, v.Target = filepath.Clean(v.Host), filepath.Clean(v.Target)
	if v.Target == "/" {
		return v, fmt.Errorf("volume %q: cannot mount over the container's root: %w", s, ErrInvalidVolume)
	}
	return v, nil
}

// Spec is everything the user asked for in `run`, validated, before anything exists.
type Spec struct {
	Name         string        `json:"name"`
	Image        string        `json:"image"`
	Args         []string      `json:"args"`
	Env          []string      `json:"env"`
	WorkingDir   string        `json:"workingDir,omitempty"`
	Hostname     string        `json:"hostname"`
	Tty          bool          `json:"tty,omitempty"`
	Interactive  bool          `json:"interactive,omitempty"`
	Detach       bool          `json:"detach,omitempty"`
	AutoRemove   bool          `json:"autoRemove,omitempty"`
	Volumes      []Volume      `json:"volumes,omitempty"`
	Limits       cgroup.Limits `json:"limits"`
	CgroupParent string        `json:"cgroupParent"`
	// Network is a fockker network's name, NetNone (only lo) or NetHost (the host's).
	Network string                `json:"network"`
	Ports   []network.PortMapping `json:"ports,omitempty"`
	// Security: capabilities, user, no_new_privs, read-only root, seccomp profile.
	Security security.Options `json:"security"`
}

// Special values of Spec.Network.
const (
	NetNone = "none"
	NetHost = "host"
)

// ownNet reports whether the container gets a network namespace of its own.
func (s *Spec) ownNet() bool { return s.Network != NetHost }

// bridged reports whether the container is attached to a fockker network.
func (s *Spec) bridged() bool { return s.Network != NetHost && s.Network != NetNone }

// Record is a container's config.json. It keeps the seed's fields (pid, id, name, command,
// createTime, status, volume, portmapping, networkname) and what the rebuild needs on top.
type Record struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Pid         int      `json:"pid"`
	Command     []string `json:"command"`
	CreateTime  string   `json:"createTime"`
	Status      Status   `json:"status"`
	Volume      []string `json:"volume"`
	PortMapping []string `json:"portmapping"`
	NetworkName string   `json:"networkname"`

	// StartTime is field 22 of /proc/<pid>/stat: a PID is this container only if it matches.
	StartTime  uint64 `json:"startTime,omitempty"`
	WatcherPid int    `json:"watcherPid,omitempty"`
	ExitCode   *int   `json:"exitCode,omitempty"`
	OOMKilled  bool   `json:"oomKilled,omitempty"`
	StartedAt  string `json:"startedAt,omitempty"`
	FinishedAt string `json:"finishedAt,omitempty"`
	// IP is the container's address on its network; Endpoint is the whole attachment.
	IP       string            `json:"ip,omitempty"`
	Endpoint *network.Endpoint `json:"endpoint,omitempty"`
	// User is who the container's processes run as, resolved by its init in the
	// container's /etc/passwd and /etc/group; exec runs as the same.
	User *security.Identity `json:"user,omitempty"`
	Spec Spec               `json:"spec"`
}

// timeLayout is the seed's CREATED column format.
const timeLayout = "2006-01-02 15:04:05"
