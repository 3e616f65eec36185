package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// ent is one tar entry of a test archive.
type ent struct {
	name, link, body string
	typ              byte
	mode             int64
}

func dir(name string) ent             { return ent{name: name, typ: tar.TypeDir} }
func file(name, body string) ent      { return ent{name: name, body: body, typ: tar.TypeReg} }
func symlink(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeSymlink} }
func hardlink(name, target string) ent {
	return ent{name: name, link: target, typ: tar.TypeLink}
}

// tarBytes builds an archive in memory.
func tarBytes(t *testing.T, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode,
			Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1_600_000_000, 0)}
		if h.Mode == 0 {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree lists a directory as "path" (dirs end in /, symlinks show -> target, files =content).
func tree(t *testing.T, root string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch {
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+"->"+l)
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestUntarPlainRootfs(t *testing.T) {
	d := t.TempDir()
	err := Untar(bytes.NewReader(tarBytes(t,
		dir("./"),
		dir("bin/"),
		file("bin/busybox", "x"),
		symlink("bin/sh", "busybox"),
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		hardlink("etc/hard", "etc/passwd"),
		file("etc/.wh.kept", "a plain file in a plain tar"),
		ent{name: "usr/bin/su", body: "s", typ: tar.TypeReg, mode: 0o4755},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)), d)
	if err != nil {
		t.Fatal(err)
	}
	want := "bin/ bin/busybox=x bin/sh->busybox etc/ etc/.wh.kept=a plain file in a plain tar " +
		"etc/hard=root:x:0:0::/root:/bin/sh\n etc/passwd=root:x:0:0::/root:/bin/sh\n tmp/ usr/ usr/bin/ usr/bin/su=s"
	if got := tree(t, d); got != want {
		t.Errorf("tree:\n got %q\nwant %q", got, want)
	}
	a, _ := os.Stat(filepath.Join(d, "etc/passwd"))
	b, _ := os.Stat(filepath.Join(d, "etc/hard"))
	if !os.SameFile(a, b) {
		t.Error("etc/hard is not a hard link of etc/passwd")
	}
	if fi, _ := os.Stat(filepath.Join(d, "usr/bin/su")); fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/su mode %v, want setuid 0755", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(d, "tmp")); fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp mode %v, want sticky 0777", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(d, "bin")); !fi.ModTime().Equal(time.Unix(1_600_000_000, 0)) {
		t.Errorf("bin mtime %v: directory times are not kept", fi.ModTime())
	}
}

func TestApplyLayerWhiteouts(t *testing.T) {
	d := t.TempDir()
	lower := tarBytes(t,
		file("etc/keep", "k"),
		file("etc/gone", "g"),
		dir("etc/gonedir/"),
		file("etc/gonedir/inner", "i"),
		file("opaque/old1", "1"),
		dir("opaque/olddir/"),
		file("opaque/olddir/x", "x"),
		symlink("etc/link", "/etc/keep"),
	)
	upper := tarBytes(t,
		file("opaque/early", "same layer, before the marker"),
		file("opaque/.wh..wh..opq", ""),
		file("opaque/new", "n"),
		file("etc/.wh.gone", ""),
		file("etc/.wh.gonedir", ""),
		file("etc/.wh.link", ""),
		file("etc/.wh.never-existed", ""),
		file(".wh..wh.plnk", ""), // aufs metadata: ignored
		file("fresh/.wh..wh..opq", ""),
	)
	for _, l := range [][]byte{lower, upper} {
		if err := ApplyLayer(bytes.NewReader(l), d); err != nil {
			t.Fatal(err)
		}
	}
	want := "etc/ etc/keep=k fresh/ opaque/ opaque/early=same layer, before the marker opaque/new=n"
	if got := tree(t, d); got != want {
		t.Errorf("tree:\n got %q\nwant %q", got, want)
	}
}

func TestApplyLayerReplacesKinds(t *testing.T) {
	d := t.TempDir()
	for _, l := range [][]byte{
		tarBytes(t, dir("a/"), file("a/x", "1"), file("b", "file"), symlink("c", "b")),
		tarBytes(t, file("a", "now a file"), dir("b/"), file("c", "now a file too")),
	} {
		if err := ApplyLayer(bytes.NewReader(l), d); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tree(t, d), "a=now a file b/ c=now a file too"; got != want {
		t.Errorf("tree %q, want %q", got, want)
	}
}

// TestHostileArchives feeds archives that try to write outside the target: each is refused
// (ErrUnsafeArchive) or contained, and nothing ever appears outside.
func TestHostileArchives(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []ent
		refused bool
		anyErr  bool // refused, not necessarily as unsafe (the source is simply not inside)
	}{
		{"dotdot", []ent{file("../escape", "x")}, true, false},
		{"dotdot inside", []ent{file("a/../../escape", "x")}, true, false},
		{"absolute", []ent{file("/escape", "x")}, true, false},
		{"hardlink out", []ent{hardlink("h", "../../etc/passwd")}, true, false},
		{"hardlink absolute", []ent{hardlink("h", "/etc/passwd")}, true, false},
		{"hardlink to dir", []ent{dir("d/"), hardlink("h", "d")}, true, false},
		{"whiteout dotdot", []ent{file("a/.wh...", "")}, true, false},
		{"whiteout dot", []ent{file("a/.wh..", "")}, true, false},
		{"unknown type", []ent{{name: "x", typ: 'Z'}}, true, false},
		// Contained: resolved inside the target as if it were the root.
		{"symlink parent absolute", []ent{symlink("evil", "OUTSIDE"), file("evil/pwned", "x")}, false, false},
		{"symlink parent relative", []ent{symlink("evil", "../../../../../../OUTSIDE"), file("evil/pwned", "x")}, false, false},
		{"symlink chain", []ent{symlink("a", "b"), symlink("b", "../../OUTSIDE"), file("a/pwned", "x")}, false, false},
		{"whiteout through symlink", []ent{symlink("evil", "OUTSIDE"), file("evil/.wh.victim", "")}, false, false},
		{"hardlink through symlink", []ent{symlink("evil", "OUTSIDE"), hardlink("h", "evil/victim")}, false, true},
		{"opaque through symlink", []ent{symlink("evil", "OUTSIDE"), file("evil/.wh..wh..opq", "")}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range tc.entries {
				tc.entries[i].link = strings.ReplaceAll(tc.entries[i].link, "OUTSIDE", outside)
			}
			target := filepath.Join(t.TempDir(), "a", "b", "root")
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			err := ApplyLayer(bytes.NewReader(tarBytes(t, tc.entries...)), target)
			if tc.anyErr && err == nil {
				t.Error("ApplyLayer succeeded")
			}
			if tc.refused && !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("ApplyLayer = %v, want ErrUnsafeArchive", err)
			}
			if !tc.refused && !tc.anyErr && err != nil {
				t.Errorf("ApplyLayer = %v, want the entry contained", err)
			}
			if got := tree(t, outside); got != "victim=host" {
				t.Errorf("outside the target: %q", got)
			}
			for _, e := range strings.Fields(tree(t, filepath.Dir(filepath.Dir(target)))) {
				if !strings.HasPrefix(e, "b/") {
					t.Errorf("next to the target: %q", e)
				}
			}
			if got := tree(t, filepath.Dir(target)); strings.Contains(got, "escape") {
				t.Errorf("next to the target: %q", got)
			}
		})
	}
}

func TestDevicesOnlyAsRoot(t *testing.T) {
	d := t.TempDir()
	err := Untar(bytes.NewReader(tarBytes(t,
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		ent{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
	)), d)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(d, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
	_, err = os.Lstat(filepath.Join(d, "dev/null"))
	if os.Geteuid() != 0 && err == nil {
		t.Error("a device node was made without root")
	}
}

func TestLayoutExtractionRefusesLinks(t *testing.T) {
	for _, e := range []ent{symlink("blobs/sha256/x", "/etc/shadow"), hardlink("b", "a")} {
		x := &extractor{dir: t.TempDir(), written: map[string]bool{}, plainOnly: true}
		err := x.run(bytes.NewReader(tarBytes(t, file("a", "a"), e)))
		if !errors.Is(err, ErrUnsafeArchive) {
			t.Errorf("%s: %v, want ErrUnsafeArchive", e.name, err)
		}
	}
}

func TestWriteTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	if err := Untar(bytes.NewReader(tarBytes(t,
		dir("bin/"), file("bin/busybox", "x"), symlink("bin/sh", "busybox"),
		file("etc/passwd", "p"), hardlink("etc/hard", "etc/passwd"),
		ent{name: "etc/secret", body: "s", typ: tar.TypeReg, mode: 0o600},
		dir("empty/"),
	)), src); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTar(&buf, src); err != nil {
		t.Fatal(err)
	}
	links := 0
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag == tar.TypeLink {
			links++
		}
		if h.Uname != "" || strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, ".") {
			t.Errorf("entry %q uname %q", h.Name, h.Uname)
		}
	}
	if links != 1 {
		t.Errorf("%d hard link entries, want 1", links)
	}
	dst := t.TempDir()
	if err := Untar(&buf, dst); err != nil {
		t.Fatal(err)
	}
	if a, b := tree(t, src), tree(t, dst); a != b {
		t.Errorf("round trip:\n src %q\n dst %q", a, b)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "etc/secret")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/secret mode %v", fi.Mode())
	}
}
