package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVolumes checks bind mounts from both sides: what the host put there is visible inside,
// what the container writes is on the host, :ro refuses writes, a missing HOST is created.
func TestVolumes(t *testing.T) {
	f := newFK(t)
	dir := t.TempDir()

	t.Run("visible both ways", func(t *testing.T) {
		f := f.with(t)
		host := filepath.Join(dir, "both")
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, "from-host"), []byte("hello from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := f.ok("run", "--rm", "-v", host+":/data", "busybox", "sh", "-c",
			`cat /data/from-host && echo "from the container" >/data/from-ctr && grep " /data " /proc/mounts | cut -d" " -f2,4`)
		if !strings.HasPrefix(out, "hello from the host\n/data rw,") {
			t.Errorf("container saw %q", out)
		}
		if b, err := os.ReadFile(filepath.Join(host, "from-ctr")); err != nil || string(b) != "from the container\n" {
			t.Errorf("host sees %q, %v", b, err)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		f := f.with(t)
		host := filepath.Join(dir, "ro")
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, "keep"), []byte("original"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := f.run("run", "--rm", "-v", host+":/ro:ro", "busybox", "sh", "-c",
			`grep " /ro " /proc/mounts | cut -d" " -f4 | cut -d, -f1; cat /ro/keep; echo; echo x >/ro/keep; echo x >/ro/new; rm /ro/keep; echo done`)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ro\noriginal\n") || !strings.Contains(r.stdout, "done") {
			t.Fatalf("%s", r)
		}
		if n := strings.Count(r.stderr, "Read-only file system"); n != 3 {
			t.Errorf("want 3 writes refused with EROFS, stderr: %q", r.stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(host, "keep")); string(b) != "original" {
			t.Errorf("read-only volume was written: %q", b)
		}
		if _, err := os.Stat(filepath.Join(host, "new")); err == nil {
			t.Errorf("a file was created through a read-only volume")
		}
		// The host directory itself stays writable.
		if err := os.WriteFile(filepath.Join(host, "still-writable"), nil, 0o644); err != nil {
			t.Errorf("the host directory became read-only: %v", err)
		}
	})

	t.Run("missing host dir is created", func(t *testing.T) {
		f := f.with(t)
		host := filepath.Join(dir, "missing", "sub")
		f.ok("run", "--rm", "-v", host+":/deep/new/dir", "busybox", "sh", "-c", `echo made >/deep/new/dir/f`)
		if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "made\n" {
			t.Errorf("host path %s: %q, %v", host, b, err)
		}
	})

	t.Run("file volume", func(t *testing.T) {
		f := f.with(t)
		host := filepath.Join(dir, "hostfile")
		if err := os.WriteFile(host, []byte("single file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := f.ok("run", "--rm", "-v", host+":/etc/from-host", "busybox", "cat", "/etc/from-host"); out != "single file\n" {
			t.Errorf("got %q", out)
		}
	})

	t.Run("several volumes and the layer stays clean", func(t *testing.T) {
		f := f.with(t)
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		name := uniq("vols")
		f.ok("run", "--name", name, "-v", a+":/a", "-v", b+":/b:ro", "busybox", "sh", "-c", `echo 1 >/a/one; ls /b`)
		if _, err := os.Stat(filepath.Join(a, "one")); err != nil {
			t.Error(err)
		}
		// What went to the volume is not in the container's writable layer.
		if _, err := os.Stat(filepath.Join(f.image, "writeLayer", name, "a", "one")); err == nil {
			t.Errorf("volume content leaked into the writeLayer")
		}
		vols, _ := f.record(name)["volume"].([]any)
		if len(vols) != 2 || vols[0] != a+":/a" || vols[1] != b+":/b:ro" {
			t.Errorf("record's volume field: %v", vols)
		}
		f.ok("rm", name)
		if _, err := os.Stat(filepath.Join(a, "one")); err != nil {
			t.Errorf("rm removed the volume's content: %v", err)
		}
	})
}

// TestVolumeTargetStaysInRootfs uses an image with a symlink pointing at a host path: a
// volume mounted "through" it must land inside the container's rootfs, never on the host.
func TestVolumeTargetStaysInRootfs(t *testing.T) {
	f := newFK(t)
	dir := t.TempDir()
	hostTarget := filepath.Join(dir, "host-target") // exists on the host, must stay empty
	if err := os.MkdirAll(hostTarget, 0o755); err != nil {
		t.Fatal(err)
	}
	// An image "evil": busybox plus /etc/evil -> <hostTarget> (absolute) and
	// /etc/up -> ../../../../../../<dir> (relative, climbing out).
	evil := filepath.Join(f.image, "evil")
	if out, err := execCmd("cp", "-a", shared.imageSrc+"/.", evil); err != nil {
		t.Fatalf("copy image: %v: %s", err, out)
	}
	if err := os.Symlink(hostTarget, filepath.Join(evil, "etc", "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../.."+dir, filepath.Join(evil, "etc", "up")); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "marker"), []byte("volume content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeSnapshot(t, dir)
	name := uniq("evil")
	out := f.ok("run", "--name", name, "-v", vol+":/etc/evil/y", "-v", vol+":/etc/up/z", "evil", "sh", "-c",
		`cat /etc/evil/y/marker /etc/up/z/marker`)
	if out != "volume content\nvolume content\n" {
		t.Errorf("the volumes are not visible through the image's symlinks: %q", out)
	}
	if d := diffSnapshots(before, treeSnapshot(t, dir)); len(d) > 0 {
		t.Errorf("mounting through the image's symlinks touched the host: %v", d)
	}
	// The mount points were made inside the container's layer instead.
	upper := filepath.Join(f.image, "writeLayer", name)
	for _, p := range []string{filepath.Join(upper, hostTarget, "y"), filepath.Join(upper, dir, "z")} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			out, _ := execCmd("find", upper)
			t.Errorf("mount point %s not inside the container's layer: %v\n%s", p, err, out)
		}
	}
	f.ok("rm", name)
	if m := hostMounts(t, dir); m != "" {
		t.Errorf("mounts left on the host:\n%s", m)
	}
}
