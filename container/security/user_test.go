package security

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment
broken:x:notanumber:0::/broken:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh

bob:x:1001:100::/home/bob:/bin/sh
nohome:x:1002:1002
root2:x:0:5:second root:/other:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:
wheel:x:10:root,alice
users:x:100:
alice:x:1000:
staff:x:50:alice, bob
bad:x:oops:alice
nogroup:x:65534:
`

func TestLookupUser(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Identity
	}{
		{"", Identity{0, 0, []uint32{0, 10}, "/root"}},
		{"root", Identity{0, 0, []uint32{0, 10}, "/root"}},
		{"0", Identity{0, 0, []uint32{0, 10}, "/root"}},
		{"alice", Identity{1000, 1000, []uint32{1000, 10, 50}, "/home/alice"}},
		{"1000", Identity{1000, 1000, []uint32{1000, 10, 50}, "/home/alice"}},
		{"bob", Identity{1001, 100, []uint32{100, 50}, "/home/bob"}},
		{"nobody", Identity{65534, 65534, []uint32{65534}, "/nonexistent"}},
		// A numeric user without an entry: that uid, group 0, home /.
		{"4242", Identity{4242, 0, []uint32{0}, "/"}},
		// An explicit group replaces the primary group and drops the member groups.
		{"alice:users", Identity{1000, 100, []uint32{100}, "/home/alice"}},
		{"alice:50", Identity{1000, 50, []uint32{50}, "/home/alice"}},
		{"alice:777", Identity{1000, 777, []uint32{777}, "/home/alice"}},
		{"1000:1000", Identity{1000, 1000, []uint32{1000}, "/home/alice"}},
		{"4242:4242", Identity{4242, 4242, []uint32{4242}, "/"}},
		{"nohome", Identity{1002, 1002, []uint32{1002}, "/"}},
		// The first entry for a uid wins.
		{"0:wheel", Identity{0, 10, []uint32{10}, "/root"}},
		{"root2", Identity{0, 5, []uint32{5}, "/other"}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := LookupUser(tc.spec, strings.NewReader(testPasswd), strings.NewReader(testGroup))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLookupUserErrors(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want error
	}{
		{"mallory", ErrUnknownUser},
		{"alice:nosuchgroup", ErrUnknownUser},
		{"broken", ErrUnknownUser}, // a malformed entry is no entry
		{":0", ErrInvalidUser},
		{"alice:", ErrInvalidUser},
		{"a:b:c", ErrInvalidUser},
		{"2147483648", ErrInvalidUser},
		{"al ice", ErrInvalidUser},
		{"../etc", ErrInvalidUser},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := LookupUser(tc.spec, strings.NewReader(testPasswd), strings.NewReader(testGroup))
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLookupUserWithoutFiles(t *testing.T) {
	got, err := LookupUser("", nil, nil)
	if err != nil || !reflect.DeepEqual(got, Identity{0, 0, []uint32{0}, "/"}) {
		t.Errorf("root without files: %+v, %v", got, err)
	}
	got, err = LookupUser("1000:1000", nil, nil)
	if err != nil || !reflect.DeepEqual(got, Identity{1000, 1000, []uint32{1000}, "/"}) {
		t.Errorf("numeric without files: %+v, %v", got, err)
	}
	if _, err := LookupUser("nobody", nil, nil); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("name without files: %v", err)
	}
	if _, err := LookupUser("0:staff", nil, nil); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("group name without files: %v", err)
	}
}

func TestLookupUserLimits(t *testing.T) {
	long := strings.Repeat("x", maxDBLine+1) + "\n"
	if _, err := LookupUser("root", strings.NewReader(long), nil); err == nil {
		t.Error("a line longer than the limit was accepted")
	}
	huge := io.MultiReader(strings.NewReader(testPasswd), strings.NewReader(strings.Repeat("u:x:1:1::/:/bin/sh\n", maxDBSize/18+1)))
	if _, err := LookupUser("nobody", huge, nil); err == nil {
		t.Error("a passwd file larger than the limit was accepted")
	}
}

func TestResolveUserIn(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(outside, []byte("evil:x:4242:4242::/evil:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// No files: root by number only.
	if id, err := ResolveUserIn(root, "0"); err != nil || id.UID != 0 || id.Home != "/" {
		t.Errorf("uid 0 without files: %+v, %v", id, err)
	}
	// An absolute symlink (and one climbing with ..) resolves inside the root, never to the
	// host's file.
	for _, target := range []string{outside, "../../../../../../.." + outside} {
		link := filepath.Join(root, PasswdPath)
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if id, err := ResolveUserIn(root, "evil"); err == nil {
			t.Errorf("symlink to %s: the host's passwd was read: %+v", target, id)
		}
	}
	os.Remove(filepath.Join(root, PasswdPath))
	if err := os.Mkdir(filepath.Join(root, PasswdPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUserIn(root, "root"); err == nil {
		t.Error("a directory as passwd was accepted")
	}
	os.Remove(filepath.Join(root, PasswdPath))
	if err := os.WriteFile(filepath.Join(root, PasswdPath), []byte(testPasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUserIn(root, "nobody"); err != nil {
		t.Errorf("nobody: %v", err)
	}
	if _, err := ResolveUserIn(filepath.Join(root, "missing"), "0"); err == nil {
		t.Error("a missing root was accepted")
	}
}
