package container

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type entry struct {
	name, link, body string
	typ              byte
}

func tarOf(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)),
			Uid: os.Getuid(), Gid: os.Getgid()}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &buf
}

func TestUntar(t *testing.T) {
	dir := t.TempDir()
	err := Untar(tarOf(t,
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/busybox", body: "x", typ: tar.TypeReg},
		entry{name: "bin/sh", link: "busybox", typ: tar.TypeSymlink},
		entry{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\n", typ: tar.TypeReg},
		entry{name: "etc/hard", link: "etc/passwd", typ: tar.TypeLink},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "busybox" {
		t.Errorf("symlink = %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/hard")); string(b) != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("hard link content %q", b)
	}
}

func TestUntarRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{name: "../escape", body: "x", typ: tar.TypeReg}}},
		{"absolute", []entry{{name: "/escape", body: "x", typ: tar.TypeReg}}},
		{"hardlink out", []entry{{name: "h", link: "../../etc/passwd", typ: tar.TypeLink}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Untar(tarOf(t, tc.entries...), t.TempDir())
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("Untar = %v, want ErrUnsafeArchive", err)
			}
		})
	}
	// A symlink pointing outside is kept as a link, but a later entry through it stays inside.
	dir := t.TempDir()
	err := Untar(tarOf(t,
		entry{name: "evil", link: outside, typ: tar.TypeSymlink},
		entry{name: "evil/pwned", body: "x", typ: tar.TypeReg},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("an archive entry was written through a symlink to outside the target")
	}
}
