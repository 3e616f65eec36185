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
	for _, d := range []Durability{Replace, Synced} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		if err := Write(p, []byte("old"), 0o600, d); err != nil {
			t.Fatal(err)
		}
		// A directory in the way makes the rename fail (and is never exchanged with the
		// file): the directory stays, no temp is left.
		for _, target := range []string{filepath.Join(dir, "d"), filepath.Join(dir, "e")} {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Write(filepath.Join(dir, "d"), []byte("new"), 0o600, d); err == nil {
			t.Fatalf("durability %d: rename over a non-empty directory succeeded", d)
		}
		if err := Write(filepath.Join(dir, "e"), []byte("new"), 0o600, d); err == nil {
			t.Fatalf("durability %d: rename over an empty directory succeeded", d)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 3 {
			t.Errorf("durability %d: directory holds %v, want f, d and e only", d, ents)
		}
		for _, sub := range []string{"d", "e"} {
			if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
				t.Errorf("durability %d: %s is no longer a directory: %v", d, sub, err)
			}
		}
		if b, _ := os.ReadFile(p); string(b) != "old" {
			t.Errorf("durability %d: old file changed: %q", d, b)
		}
	}
}

// TestReplaceKeepsReadersWhole: the exchange path leaves the new content under the name, the
// old one nowhere, and a file opened before still reads the old content whole.
func TestReplaceKeepsReadersWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec")
	if err := Write(p, []byte("old content"), 0o600, Replace); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(p, []byte("new"), 0o444, Replace); err != nil {
		t.Fatal(err)
	}
	old := make([]byte, 64)
	n, _ := f.Read(old)
	if string(old[:n]) != "old content" {
		t.Errorf("reader opened before the write reads %q", old[:n])
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "new" {
		t.Errorf("content %q, %v", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %v, want rec only", ents)
	}
}
