package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"busybox", "my-image_1.0", "A"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "mnt", "writeLayer", "workLayer", "x.tar", "a:b", strings.Repeat("a", 65)} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestImportCommitListRemove(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images")
	users := map[string][]string{}
	s := NewStore(root, func(name string) ([]string, error) { return users[name], nil })

	// Import, plain and gzip-compressed.
	rootfs := tarBytes(t, dir("bin/"), file("bin/sh", "sh"), file("etc/motd", "hello"))
	if _, err := s.Import(bytes.NewReader(rootfs), "plain", Options{Source: "import test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(bytes.NewReader(gzipped(t, rootfs)), "zipped", Options{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"plain", "zipped"} {
		if got := tree(t, filepath.Join(root, n)); got != "bin/ bin/sh=sh etc/ etc/motd=hello" {
			t.Errorf("%s: %q", n, got)
		}
	}
	if _, err := s.Import(bytes.NewReader(rootfs), "plain", Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("import over an image: %v, want ErrExists", err)
	}
	// A hostile or truncated import leaves nothing.
	for name, bad := range map[string][]byte{
		"hostile":   tarBytes(t, file("ok", "x"), file("../../../x", "x")),
		"truncated": rootfs[:700],
	} {
		if _, err := s.Import(bytes.NewReader(bad), name, Options{}); err == nil {
			t.Errorf("%s import succeeded", name)
		}
	}
	onlyImages(t, root, "plain", "zipped")

	// Commit a tree as an archive; it refuses to overwrite without force.
	if _, err := s.Commit(filepath.Join(root, "plain"), "snap", Options{Source: "commit c1", Config: Config{Cmd: []string{"sh"}}}); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get("snap")
	if err != nil || img.Form != FormArchive || img.Source != "commit c1" || img.Config.Cmd[0] != "sh" {
		t.Fatalf("snap: %+v %v", img, err)
	}
	f, _ := os.Open(filepath.Join(root, "snap.tar"))
	out := t.TempDir()
	if err := Untar(f, out); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := tree(t, out); got != "bin/ bin/sh=sh etc/ etc/motd=hello" {
		t.Errorf("committed: %q", got)
	}
	if _, err := s.Commit(out, "snap", Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("commit over an image: %v", err)
	}
	os.WriteFile(filepath.Join(out, "etc/motd"), []byte("changed"), 0o644)
	// An image committed over an unpacked one: both forms go, the new archive stays.
	os.Mkdir(filepath.Join(root, "snap"), 0o755)
	if _, err := s.Commit(out, "snap", Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "snap")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale unpacked snap/ is still there: %v", err)
	}

	// Made by hand: a directory, a symlink to one and an archive, listed without records;
	// the layer directories and stray files are not images.
	os.Mkdir(filepath.Join(root, "handmade"), 0o755)
	os.WriteFile(filepath.Join(root, "handmade", "f"), []byte("12345"), 0o644)
	os.Symlink(filepath.Join(root, "handmade"), filepath.Join(root, "linked"))
	os.WriteFile(filepath.Join(root, "archived.tar"), rootfs, 0o644)
	for _, d := range []string{"mnt", "writeLayer", "workLayer"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "notes.txt"), nil, 0o644)
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name+":"+i.Form)
	}
	want := "archived:archive handmade:directory linked:directory plain:directory snap:archive zipped:directory"
	if strings.Join(names, " ") != want {
		t.Errorf("images %v, want %s", names, want)
	}
	for _, n := range []string{"handmade", "linked"} {
		if h, _ := s.Get(n); h.Size != 5 || !strings.HasPrefix(h.Source, "directory ") {
			t.Errorf("%s: %+v", n, h)
		}
	}

	// Remove: refused while a container uses it, then gone in every form.
	users["snap"] = []string{"c1"}
	if err := s.Remove("snap"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "c1") {
		t.Errorf("remove of a used image: %v", err)
	}
	if _, err := s.Commit(out, "snap", Options{Force: true}); !errors.Is(err, ErrInUse) {
		t.Errorf("replace of a used image: %v", err)
	}
	delete(users, "snap")
	if err := s.Remove("snap"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("snap"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if err := s.Remove("linked"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "handmade", "f")); err != nil {
		t.Errorf("removing a symlinked image touched its target: %v", err)
	}
	for _, bad := range []string{"mnt", "../x", ""} {
		if err := s.Remove(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("remove %q: %v", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "mnt")); err != nil {
		t.Error("remove mnt touched the layer directory")
	}
	ents, _ := filepath.Glob(filepath.Join(root, tmpPrefix+"*"))
	if len(ents) > 0 {
		t.Errorf("temporary entries left: %v", ents)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "out.tar")
	if err := WriteFile(p, func(w io.Writer) error { _, err := w.Write([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, func(io.Writer) error { return errors.New("boom") }); err == nil {
		t.Fatal("a failing fill succeeded")
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 1 {
		t.Errorf("left %v", ents)
	}
	if b, _ := os.ReadFile(p); string(b) != "x" {
		t.Errorf("a failed write changed the file: %q", b)
	}
}
