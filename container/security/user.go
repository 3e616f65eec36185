package security

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The files a user is looked up in, inside the container's root.
const (
	PasswdPath = "/etc/passwd"
	GroupPath  = "/etc/group"

	maxID       = 1<<31 - 1 // ids above are refused, as runc does
	maxDBSize   = 16 << 20  // a passwd or group file larger than this is refused
	maxDBLine   = 64 << 10
	defaultHome = "/"
)

// Identity is who a container's processes run as.
type Identity struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// AdditionalGIDs are the supplementary groups: the primary group first, then the
	// groups that list the user as a member (as docker sets them).
	AdditionalGIDs []uint32 `json:"additionalGids,omitempty"`
	// Home is the user's home directory from passwd ("/" without an entry), which becomes
	// HOME unless the user set it.
	Home string `json:"home,omitempty"`
}

// ValidateUserSpec checks the syntax of -u: USER[:GROUP], each a name or a numeric id.
func ValidateUserSpec(spec string) error {
	if spec == "" {
		return nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	bad := func(why string) error { return fmt.Errorf("%w: -u %q: %s", ErrInvalidUser, spec, why) }
	if u == "" {
		return bad("want USER[:GROUP] with a user name or id")
	}
	if hasGroup && g == "" {
		return bad("the group after ':' is empty")
	}
	for _, part := range []string{u, g} {
		if strings.ContainsAny(part, ":/\n\r\t ,\x00") {
			return bad("a user or group name cannot contain ':', '/', ',' or whitespace")
		}
		if isDigits(part) {
			if _, ok := parseID(part); !ok {
				return bad(fmt.Sprintf("id %s is out of range (0-%d)", part, maxID))
			}
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseID parses a numeric user or group id: decimal digits only, 0..maxID.
func parseID(s string) (uint32, bool) {
	if !isDigits(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > maxID {
		return 0, false
	}
	return uint32(v), true
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// scanDB calls fn with the fields of every line of a colon-separated database. Empty lines
// and comments are skipped; so are lines fn rejects (a malformed entry never means root).
func scanDB(r io.Reader, fn func(fields []string)) error {
	sc := bufio.NewScanner(io.LimitReader(r, maxDBSize+1))
	sc.Buffer(make([]byte, 4096), maxDBLine)
	read := 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		if read > maxDBSize {
			return fmt.Errorf("larger than %d bytes", maxDBSize)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := scanDB(r, func(f []string) {
		if len(f) < 4 || f[0] == "" {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := scanDB(r, func(f []string) {
		if len(f) < 3 || f[0] == "" {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	})
	return out, err
}

// LookupUser resolves a -u value against the container's passwd and group files (nil when
// the file does not exist), with runc's rules, which docker uses:
//   - USER is a name, looked up in passwd, or a numeric uid, which needs no entry; "" is 0.
//     The entry, if any, gives the primary group and the home directory.
//   - GROUP is a name, looked up in group, or a numeric gid, which needs no entry; it
//     replaces the primary group.
//   - Without GROUP, the groups whose member list names the user are supplementary groups.
//
// The primary group comes first among AdditionalGIDs, as docker sets it.
func LookupUser(spec string, passwd, group io.Reader) (Identity, error) {
	if err := ValidateUserSpec(spec); err != nil {
		return Identity{}, err
	}
	userArg, groupArg, _ := strings.Cut(spec, ":")
	id := Identity{Home: defaultHome}

	var users []passwdEntry
	if passwd != nil {
		var err error
		if users, err = parsePasswd(passwd); err != nil {
			return Identity{}, fmt.Errorf("read %s: %w", PasswdPath, err)
		}
	}
	uidArg, uidNumeric := parseID(userArg)
	var matched *passwdEntry
	for i := range users {
		u := &users[i]
		if (userArg == "" && u.uid == 0) || (uidNumeric && u.uid == uidArg) || (userArg != "" && !uidNumeric && u.name == userArg) {
			matched = u
			break // the first entry wins
		}
	}
	switch {
	case matched != nil:
		id.UID, id.GID = matched.uid, matched.gid
		if matched.home != "" {
			id.Home = matched.home
		}
	case userArg != "" && !uidNumeric:
		return Identity{}, fmt.Errorf("unable to find user %s: %w", userArg, ErrUnknownUser)
	default:
		id.UID = uidArg // numeric without an entry, or "" (root)
	}

	var sgids []uint32
	if groupArg != "" || matched != nil {
		var groups []groupEntry
		if group != nil {
			var err error
			if groups, err = parseGroup(group); err != nil {
				return Identity{}, fmt.Errorf("read %s: %w", GroupPath, err)
			}
		}
		gidArg, gidNumeric := parseID(groupArg)
		var found []groupEntry
		for _, g := range groups {
			switch {
			case groupArg == "":
				if slices.Contains(g.members, matched.name) {
					found = append(found, g)
				}
			case gidNumeric:
				if g.gid == gidArg {
					found = append(found, g)
				}
			case g.name == groupArg:
				found = append(found, g)
			}
		}
		switch {
		case groupArg != "" && len(found) > 0:
			id.GID = found[0].gid
		case groupArg != "" && gidNumeric:
			id.GID = gidArg
		case groupArg != "":
			return Identity{}, fmt.Errorf("unable to find group %s: %w", groupArg, ErrUnknownUser)
		default:
			for _, g := range found {
				sgids = append(sgids, g.gid)
			}
		}
	}
	id.AdditionalGIDs = []uint32{id.GID}
	for _, g := range sgids {
		if !slices.Contains(id.AdditionalGIDs, g) {
			id.AdditionalGIDs = append(id.AdditionalGIDs, g)
		}
	}
	return id, nil
}

// openDBIn opens a database file under the root rfd without blocking on a FIFO; nil, nil if
// it does not exist.
func openDBIn(rfd int, path string) (*os.File, error) {
	fd, err := unix.Openat2(rfd, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, nil
}

// ResolveUserIn looks spec up in /etc/passwd and /etc/group under root (a container's root
// seen from the host, /proc/PID/root of its init). Both are opened with RESOLVE_IN_ROOT:
// the image's symlinks resolve inside root, never to the host's files.
func ResolveUserIn(root, spec string) (Identity, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Identity{}, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	var files [2]io.Reader // a nil *os.File must reach LookupUser as a nil io.Reader
	for i, p := range []string{PasswdPath, GroupPath} {
		f, err := openDBIn(rfd, p)
		if err != nil {
			return Identity{}, err
		}
		if f != nil {
			defer f.Close()
			files[i] = f
		}
	}
	return LookupUser(spec, files[0], files[1])
}
