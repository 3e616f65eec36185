package container

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// leaveOverlayWork makes what an unmounted volatile overlay leaves behind in its layers.
func leaveOverlayWork(t *testing.T, roots Roots, name string) {
	t.Helper()
	work := filepath.Join(roots.WorkDir(name), "work", "incompat", "volatile")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "dirty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(roots.UpperDir(name), overlayUUIDXattr, []byte("0123456789abcdef"), 0); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestLayerSpares(t *testing.T) {
	roots := layerRoots(t)
	upperSpare := filepath.Join(roots.Image, "writeLayer", spareLayer)
	workSpare := filepath.Join(roots.Image, "workLayer", spareLayer)

	if err := createLayers(roots, "one"); err != nil {
		t.Fatal(err)
	}
	leaveOverlayWork(t, roots, "one")
	if err := removeLayers(roots, "one"); err != nil {
		t.Fatal(err)
	}
	if exists(roots.UpperDir("one")) || exists(roots.WorkDir("one")) {
		t.Fatal("layers of one still there")
	}
	if !ownedLayer(upperSpare, roots.State) {
		t.Errorf("%s: missing or not marked", upperSpare)
	}
	buf := make([]byte, 256)
	n, err := unix.Llistxattr(upperSpare, buf)
	names := strings.Split(strings.TrimSuffix(string(buf[:max(n, 0)]), "\x00"), "\x00")
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{layerOwnerXattr, overlayUUIDXattr}) {
		t.Errorf("%s carries %q (%v), want the owner mark and the overlay's identity", upperSpare, names, err)
	}
	if exists(workSpare) {
		t.Errorf("a work directory was kept: %s", workSpare)
	}
	// Nothing of the work directory is left, not even what was moved out to be removed.
	if ents, err := os.ReadDir(filepath.Join(roots.Image, "workLayer")); err != nil || len(ents) > 0 {
		t.Errorf("workLayer holds %v (%v)", ents, err)
	}
	// The parents are the tops of unrelated trees for ext4's allocator, where the file
	// system has the flag.
	for _, sub := range []string{"writeLayer", "workLayer"} {
		if ok, flags := topDir(t, filepath.Join(roots.Image, sub)); !ok {
			t.Errorf("%s: flags %#x, no FS_TOPDIR_FL", sub, flags)
		}
	}

	// The next container takes both, marked for its own installation.
	other := roots
	other.State = roots.State + "-other"
	if err := createLayers(other, "two"); err != nil {
		t.Fatal(err)
	}
	if exists(upperSpare) {
		t.Error("spare not taken")
	}
	if !ownedLayer(other.UpperDir("two"), other.State) || !ownedLayer(other.WorkDir("two"), other.State) {
		t.Error("layers not marked for the new owner")
	}

	// Not kept: an upper layer with content, one whose mode changed, one with a foreign
	// attribute; a spare already there is never replaced.
	cases := map[string]func(dir string) error{
		"content": func(dir string) error { return os.WriteFile(filepath.Join(dir, "f"), nil, 0o600) },
		"mode":    func(dir string) error { return os.Chmod(dir, 0o700) },
		"xattr":   func(dir string) error { return unix.Setxattr(dir, "trusted.overlay.opaque", []byte("y"), 0) },
	}
	for what, change := range cases {
		if err := createLayers(roots, what); err != nil {
			t.Fatal(err)
		}
		if err := change(roots.UpperDir(what)); err != nil {
			t.Fatal(err)
		}
		if err := removeLayers(roots, what); err != nil {
			t.Fatal(err)
		}
		if exists(roots.UpperDir(what)) || exists(upperSpare) {
			t.Errorf("%s: upper layer left (%v) or kept as spare (%v)", what, exists(roots.UpperDir(what)), exists(upperSpare))
		}
	}
	if err := createLayers(roots, "three"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(upperSpare, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upperSpare, "marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := removeLayers(roots, "three"); err != nil {
		t.Fatal(err)
	}
	if exists(roots.UpperDir("three")) || !exists(filepath.Join(upperSpare, "marker")) {
		t.Error("an existing spare was replaced, or the layer left")
	}
	os.RemoveAll(upperSpare)

	// Prune's part: only this installation's spares go.
	if err := createLayers(roots, "four"); err != nil {
		t.Fatal(err)
	}
	if err := removeLayers(roots, "four"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(workSpare, 0o755); err != nil { // what an earlier version kept
		t.Fatal(err)
	}
	if err := markLayer(workSpare, roots.State); err != nil {
		t.Fatal(err)
	}
	if err := removeLayerSpares(other); err != nil || !exists(upperSpare) || !exists(workSpare) {
		t.Errorf("another installation's prune removed our spares (%v)", err)
	}
	if err := removeLayerSpares(roots); err != nil || exists(upperSpare) || exists(workSpare) {
		t.Errorf("prune left our spares (%v)", err)
	}
	if err := removeLayerSpares(roots); err != nil {
		t.Errorf("nothing to remove: %v", err)
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
	vol := func(target string) []Volume { return []Volume{{Host: "/srv", Target: target}} }
	for _, tc := range []struct {
		volumes []Volume
		want    bool
	}{
		{nil, true},
		{vol("/data"), true},
		{vol("/etcetera"), true},
		{vol("/etc/passwd.d"), true},
		{vol("/"), false},
		{vol("/etc"), false},
		{vol("/etc/passwd"), false},
		{vol("/etc/group"), false},
	} {
		if got := userFromImage(img, tc.volumes); got != tc.want {
			t.Errorf("volumes %v: %v, want %v", tc.volumes, got, tc.want)
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
