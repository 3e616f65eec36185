package tests

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestTarImage checks that IMAGE.tar is unpacked once, atomically, to IMAGE/ even when
// several runs race for it, and that the result is the image.
func TestTarImage(t *testing.T) {
	f := newFK(t)
	if err := os.Remove(filepath.Join(f.image, "busybox")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(f.image, "busybox.tar")
	if out, err := execCmd("tar", "-C", shared.imageSrc, "-cf", archive, "."); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	const n = 5
	var wg sync.WaitGroup
	results := make([]result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = f.exec("run", "--rm", "busybox", "sh", "-c", "cat /etc/passwd | head -1")
		}(i)
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].code != 0 || results[i].stdout != "root:x:0:0:root:/root:/bin/sh\n" {
			t.Errorf("run %d on the tar image: %v %s", i, errs[i], results[i])
		}
	}
	ents, err := os.ReadDir(f.image)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".unpack") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	t.Logf("image root: %v", names)
	fi, err := os.Lstat(filepath.Join(f.image, "busybox"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("busybox/ not unpacked as a directory: %v", err)
	}
	src, got := treeSnapshot(t, shared.imageSrc), treeSnapshot(t, filepath.Join(f.image, "busybox"))
	if d := diffSnapshots(src, got); len(d) > 0 {
		t.Errorf("unpacked image differs from the source: %v", d)
	}
	// A later run uses the directory and leaves the archive alone.
	before := treeSnapshot(t, f.image)
	f.ok("run", "--rm", "busybox", "true")
	if d := diffSnapshots(before, treeSnapshot(t, f.image)); len(d) > 0 {
		t.Errorf("second run changed the image root: %v", d)
	}
}

// TestUnsafeTarImage checks that an archive entry leaving the image is refused and nothing
// is unpacked anywhere.
func TestUnsafeTarImage(t *testing.T) {
	f := newFK(t)
	tests := []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{{Name: "ok", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"absolute", []tar.Header{{Name: "/escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"symlink then write through it", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/PLACEHOLDER"},
			{Name: "link/escape", Typeflag: tar.TypeReg, Mode: 0o644}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			outside := t.TempDir()
			image := "evil" + strings.ReplaceAll(uniq(""), "-", "")
			fh, err := os.Create(filepath.Join(f.image, image+".tar"))
			if err != nil {
				t.Fatal(err)
			}
			tw := tar.NewWriter(fh)
			for _, h := range tc.entries {
				if h.Linkname == "/PLACEHOLDER" {
					h.Linkname = outside
				}
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			fh.Close()
			before := treeSnapshot(t, f.image)
			r := f.run("run", "--rm", image, "true")
			if _, err := os.Stat(filepath.Join(outside, "escape")); err == nil {
				t.Fatalf("the archive wrote outside the image root")
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f.image), "escape")); err == nil {
				t.Fatalf("the archive wrote next to the image root")
			}
			if _, err := os.Stat("/escape"); err == nil {
				t.Fatalf("the archive wrote /escape")
			}
			if tc.name == "symlink then write through it" && r.code != 125 {
				// Resolving the link inside the image is a valid outcome (the image then
				// has no "true": 127): the entry must have landed inside.
				if _, err := os.Stat(filepath.Join(f.image, image, outside, "escape")); err != nil {
					t.Errorf("entry not found inside the image: %v", err)
				}
				return
			}
			if r.code != 125 || !strings.Contains(r.stderr, image) {
				t.Errorf("want 125 naming the image: %s", r)
			}
			if d := diffSnapshots(before, treeSnapshot(t, f.image)); len(d) > 0 {
				t.Errorf("image root changed: %v", d)
			}
		})
	}
}
