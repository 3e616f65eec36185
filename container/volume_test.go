package container

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// layerRoots makes an image root and a state root for layer tests; the owner mark is a
// trusted extended attribute, which needs root.
func layerRoots(t *testing.T) Roots {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("layer marks are trusted.* extended attributes: needs root")
	}
	dir := t.TempDir()
	return Roots{State: filepath.Join(dir, "state"), Image: filepath.Join(dir, "image")}
}

// leaveOverlayWork makes what an unmounted volatile overlay leaves in a work directory.
func leaveOverlayWork(t *testing.T, dir string) {
	t.Helper()
	work := filepath.Join(dir, "work", "incompat", "volatile")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "dirty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestLayers: the layer directories are made marked, in parents flagged as tops of unrelated
// trees where the file system has the flag, and removed without a trace.
func TestLayers(t *testing.T) {
	roots := layerRoots(t)
	if err := createLayers(roots, "one"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{roots.UpperDir("one"), roots.WorkDir("one")} {
		if !ownedLayer(d, roots.State) {
			t.Errorf("%s: missing or not marked", d)
		}
	}
	for _, sub := range []string{"writeLayer", "workLayer"} {
		if ok, flags := topDir(t, filepath.Join(roots.Image, sub)); !ok {
			t.Errorf("%s: flags %#x, no FS_TOPDIR_FL", sub, flags)
		}
	}
	if err := createLayers(roots, "one"); !errors.Is(err, ErrLayerExists) {
		t.Errorf("layers made twice: %v, want ErrLayerExists", err)
	}
	leaveOverlayWork(t, roots.WorkDir("one"))
	if err := removeLayers(roots, "one"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"writeLayer", "workLayer"} {
		if ents, err := os.ReadDir(filepath.Join(roots.Image, sub)); err != nil || len(ents) > 0 {
			t.Errorf("%s holds %v (%v)", sub, ents, err)
		}
	}
	if err := removeLayers(roots, "one"); err != nil {
		t.Errorf("layers that are gone: %v", err)
	}
}

func TestUserFromImage(t *testing.T) {
	img := t.TempDir()
	if err := os.MkdirAll(filepath.Join(img, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !userFromImage(img, nil) {
		t.Error("no volumes: not looked up in the image")
	}
	// Any volume may end up on /etc (through the image's symlinks, or volumes bound before
	// it): never looked up in the image then.
	for _, target := range []string{"/data", "/", "/etc", "/etc/passwd", "/cfg"} {
		if userFromImage(img, []Volume{{Host: "/srv", Target: target}}) {
			t.Errorf("volume on %s: looked up in the image", target)
		}
	}
	// A symbolic link in the image could lead the look-up under a volume.
	if err := os.Symlink("/data/group", filepath.Join(img, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	if userFromImage(img, nil) {
		t.Error("an image whose /etc/group is a symbolic link: looked up in the image")
	}
	link := t.TempDir()
	if err := os.Symlink("usr/etc", filepath.Join(link, "etc")); err != nil {
		t.Fatal(err)
	}
	if userFromImage(link, nil) {
		t.Error("an image whose /etc is a symbolic link: looked up in the image")
	}
}

// topDir reports whether dir carries FS_TOPDIR_FL, or true if its file system has no flags.
func topDir(t *testing.T, dir string) (bool, uint32) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return err != nil || flags&fsTopDirFlag != 0, flags
}

func TestMkdirTop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	if err := mkdirTop(dir); err != nil {
		t.Fatal(err)
	}
	if ok, flags := topDir(t, dir); !ok {
		t.Errorf("new directory: flags %#x, no FS_TOPDIR_FL", flags)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("new directory: %v, %v", fi, err)
	}
	// An existing directory is left as it is.
	old := t.TempDir()
	if err := mkdirTop(old); err != nil {
		t.Fatal(err)
	}
	if fd, err := unix.Open(old, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		unix.Close(fd)
		if err == nil && flags&fsTopDirFlag != 0 {
			t.Errorf("existing directory flagged")
		}
	}
}

// TestRemoveWorkDir: what the overlay never makes is removed with the rest, and nothing is
// left next to the directory.
func TestRemoveWorkDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "c1")
	for _, p := range []string{"work/incompat/volatile", "work/other", "stray"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"work/incompat/volatile/dirty", "work/other/file", "stray/file"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeWorkDir(dir); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(parent); err != nil || len(ents) > 0 {
		t.Errorf("left %v (%v)", ents, err)
	}
	if err := removeWorkDir(dir); err != nil {
		t.Errorf("a work directory that is gone: %v", err)
	}
}
