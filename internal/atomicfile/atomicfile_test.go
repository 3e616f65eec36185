package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	for _, d := range []Durability{Replace, Synced, Durable} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f.json")
		for i, content := range []string{"one", "two"} {
			if err := Write(p, []byte(content), 0o640, d); err != nil {
				t.Fatalf("durability %d, write %d: %v", d, i, err)
			}
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "two" {
			t.Fatalf("durability %d: content %q, %v", d, b, err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("durability %d: mode %v", d, fi.Mode())
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("durability %d: directory holds %v, want only f.json", d, ents)
		}
	}
}

func TestWriteFailureChangesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o600, Synced); err != nil {
		t.Fatal(err)
	}
	// A directory in the way makes the rename fail: the old file stays, no temp is left.
	target := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("new"), 0o600, Synced); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %v, want f and d only", ents)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("old file changed: %q", b)
	}
}
