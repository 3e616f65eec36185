package smallfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRead reads files of any size, /proc files (which say they are empty) included, and a
// missing file is os.ErrNotExist.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 1023, 1024, 1025, 5000} {
		want := strings.Repeat("x", n)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := Read(p); err != nil || string(b) != want {
			t.Fatalf("%d bytes: read %d, %v", n, len(b), err)
		}
	}
	if b, err := Read("/proc/self/stat"); err != nil || !strings.Contains(string(b), ") ") {
		t.Fatalf("/proc/self/stat: %q, %v", b, err)
	}
	if _, err := Read(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestOverwrite: the content is replaced in place (same file), longer content cut, and
// anything but an existing regular file is refused untouched.
func TestOverwrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("a longer old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	for _, want := range []string{"short", "a somewhat longer new content", ""} {
		if err := Overwrite(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("content %q, want %q", b, want)
		}
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) || after.Mode().Perm() != 0o600 {
		t.Error("the file was replaced, not overwritten")
	}
	if err := os.Symlink(p, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"link", "d", "none"} {
		if err := Overwrite(filepath.Join(dir, bad), []byte("x")); err == nil {
			t.Errorf("%s: overwritten", bad)
		}
	}
	if b, _ := os.ReadFile(p); len(b) != 0 {
		t.Errorf("the symlink's target changed: %q", b)
	}
}

// TestKeep: a file becomes the spare (its directory made on first use), unless there is one.
func TestKeep(t *testing.T) {
	dir := t.TempDir()
	spare := filepath.Join(dir, "spares", "s")
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !Keep(filepath.Join(dir, "a"), spare) {
		t.Fatal("a not kept")
	}
	if Exists(filepath.Join(dir, "a")) || !Exists(spare) {
		t.Fatal("a was not moved to the spare")
	}
	if Keep(filepath.Join(dir, "b"), spare) {
		t.Error("b replaced the spare")
	}
	if b, _ := os.ReadFile(spare); string(b) != "a" || !Exists(filepath.Join(dir, "b")) {
		t.Errorf("spare %q, b exists %v", b, Exists(filepath.Join(dir, "b")))
	}
	if Keep(filepath.Join(dir, "none"), filepath.Join(dir, "other", "s")) || Exists(filepath.Join(dir, "other")) {
		t.Error("a missing file was kept, or made the spares' directory")
	}
}
