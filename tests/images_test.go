package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests build image archives byte by byte, as docker, podman and the OCI image layout
// spec lay them out, load them with the fockker binary and ask the containers what they see.

// tarEntry is one entry of a layer or root file system tar built by a test.
type tarEntry struct {
	name, body, link string
	typ              byte
}

func regular(name, body string) tarEntry { return tarEntry{name: name, body: body, typ: tar.TypeReg} }

// buildTar writes the tree under base (if any), then the entries, as a tar.
func buildTar(t *testing.T, base string, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if base != "" {
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == base {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			h.Name, h.Uname, h.Gname = rel, "", ""
			if fi.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				_, err = tw.Write(b)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, ModTime: time.Now()}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// archiveImage is an image to be written as an archive: uncompressed layers and a config.
type archiveImage struct {
	layers  [][]byte
	config  map[string]any // the "config" object of the image config
	diffIDs []string       // defaults to the layers' digests
}

func (img archiveImage) configBlob() []byte {
	ids := img.diffIDs
	if ids == nil {
		for _, l := range img.layers {
			ids = append(ids, "sha256:"+sha(l))
		}
	}
	b, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
		"config": img.config, "rootfs": map[string]any{"type": "layers", "diff_ids": ids}})
	return b
}

// files is a tar's content in order.
type files struct {
	names []string
	data  map[string][]byte
}

func (f *files) add(name string, b []byte) {
	if f.data == nil {
		f.data = map[string][]byte{}
	}
	f.names = append(f.names, name)
	f.data[name] = b
}

func (f *files) write(t *testing.T, path string, extra ...tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range extra {
		tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644})
	}
	for _, n := range f.names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(f.data[n])), Typeflag: tar.TypeReg})
		tw.Write(f.data[n])
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeOCI writes an OCI image layout tar; the first layer is gzip-compressed, the others not.
func (img archiveImage) writeOCI(t *testing.T, path, ref string, extra ...tarEntry) {
	t.Helper()
	var out files
	out.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var layers []map[string]any
	for i, l := range img.layers {
		mt := "application/vnd.oci.image.layer.v1.tar"
		if i == 0 {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(l)
			zw.Close()
			l, mt = z.Bytes(), mt+"+gzip"
		}
		out.add("blobs/sha256/"+sha(l), l)
		layers = append(layers, map[string]any{"mediaType": mt, "digest": "sha256:" + sha(l), "size": len(l)})
	}
	cfg := img.configBlob()
	out.add("blobs/sha256/"+sha(cfg), cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(cfg), "size": len(cfg)},
		"layers": layers})
	out.add("blobs/sha256/"+sha(man), man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(man), "size": len(man),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": ref}}}})
	out.add("index.json", idx)
	out.write(t, path, extra...)
}

// writeDocker writes a `docker save` archive (the layout before docker 25).
func (img archiveImage) writeDocker(t *testing.T, path, tag string) {
	t.Helper()
	var out files
	var paths []string
	for _, l := range img.layers {
		p := sha(l) + "/layer.tar"
		out.add(p, l)
		paths = append(paths, p)
	}
	cfg := img.configBlob()
	out.add(sha(cfg)+".json", cfg)
	man, _ := json.Marshal([]map[string]any{{"Config": sha(cfg) + ".json", "RepoTags": []string{tag}, "Layers": paths}})
	out.add("manifest.json", man)
	out.write(t, path)
}

// demoImage is busybox plus files, then a layer that whites out a file, makes /data opaque
// and adds the working directory; its config sets Env, Entrypoint, Cmd and WorkingDir.
func demoImage(t *testing.T) archiveImage {
	base := buildTar(t, shared.imageSrc,
		regular("etc/motd", "from the base layer"),
		regular("data/stale", "hidden by the opaque marker"),
		tarEntry{name: "data/old/", typ: tar.TypeDir},
		regular("data/old/deep", "also hidden"),
	)
	top := buildTar(t, "",
		regular("etc/.wh.motd", ""),
		regular("data/.wh..wh..opq", ""),
		regular("data/fresh", "from the top layer"),
		tarEntry{name: "srv/app/", typ: tar.TypeDir},
	)
	return archiveImage{layers: [][]byte{base, top}, config: map[string]any{
		"Env":        []string{"PATH=/bin:/sbin", "GREETING=hello from the image", "HOME=/srv"},
		"Entrypoint": []string{"/bin/sh", "-c"},
		"Cmd":        []string{`echo "cwd=$(pwd) greeting=$GREETING home=$HOME path=$PATH"; ls -A /data; test -e /etc/motd && echo motd || echo no-motd`},
		"WorkingDir": "/srv/app",
	}}
}

func TestImageLoadAndRunWithConfig(t *testing.T) {
	f := newFK(t)
	work := t.TempDir()
	for _, tc := range []struct {
		format, name, source string
		write                func(img archiveImage, path string)
	}{
		{"oci", "demo", "load oci-archive ", func(img archiveImage, p string) { img.writeOCI(t, p, "docker.io/library/demo:1.0") }},
		{"docker", "demo-docker", "load docker-archive ", func(img archiveImage, p string) { img.writeDocker(t, p, "example.com/team/demo-docker:latest") }},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f := f.with(t)
			arch := filepath.Join(work, tc.format+".tar")
			tc.write(demoImage(t), arch)
			if out := f.ok("load", "-i", arch); out != "Loaded image: "+tc.name+"\n" {
				t.Fatalf("load printed %q (progress must stay off when stdout is not a terminal)", out)
			}
			// No command: Entrypoint + Cmd, in WorkingDir, with the image's Env.
			got := f.ok("run", "--rm", "--net", "none", tc.name)
			want := "cwd=/srv/app greeting=hello from the image home=/srv path=/bin:/sbin\nfresh\nno-motd\n"
			if got != want {
				t.Errorf("container saw:\n%q\nwant\n%q", got, want)
			}
			// The user's -e and -w win; the user's arguments replace Cmd, not Entrypoint.
			got = f.ok("run", "--rm", "--net", "none", "-e", "GREETING=mine", "-w", "/tmp", tc.name, `echo "$(pwd) $GREETING $HOME"`)
			if got != "/tmp mine /srv\n" {
				t.Errorf("with -e, -w and a command: %q", got)
			}
			got = f.ok("run", "--rm", "--net", "none", "--entrypoint", "cat", tc.name, "/data/fresh")
			if got != "from the top layer" {
				t.Errorf("--entrypoint cat: %q", got)
			}
			var imgs []map[string]any
			if err := json.Unmarshal([]byte(f.ok("images", "--format", "json")), &imgs); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, i := range imgs {
				if i["name"] == tc.name {
					found = true
					if !strings.HasPrefix(i["source"].(string), tc.source+arch) || i["form"] != "directory" {
						t.Errorf("image record %v", i)
					}
				}
			}
			if !found {
				t.Errorf("images does not list %s: %v", tc.name, imgs)
			}
			// The whiteouts are in the image itself, not only in what overlayfs shows.
			for _, gone := range []string{"etc/motd", "data/stale", "data/old"} {
				if _, err := os.Lstat(filepath.Join(f.image, tc.name, gone)); err == nil {
					t.Errorf("%s survived its whiteout", gone)
				}
			}
		})
	}
	// A second load of the same name is refused without -f and replaces it with -f.
	arch := filepath.Join(work, "oci.tar")
	if r := f.fails(125, "load", "-i", arch); !strings.Contains(r.stderr, "exists") {
		t.Errorf("second load: %s", r)
	}
	f.ok("load", "-f", "-i", arch)
	f.ok("load", "-i", arch, "--name", "renamed")
	if got := f.ok("images", "-q"); got != "busybox\ndemo\ndemo-docker\nrenamed\n" {
		t.Errorf("images -q: %q", got)
	}
}

func TestImageLoadProgressOnTerminal(t *testing.T) {
	f := newFK(t)
	arch := filepath.Join(t.TempDir(), "demo.tar")
	demoImage(t).writeOCI(t, arch, "demo:1")
	tm := startOnTerm(t, f, 24, 80, "load", "-i", arch)
	if code := tm.wait(30 * time.Second); code != 0 {
		t.Fatalf("load on a terminal: exit %d: %q", code, tm.output())
	}
	tm.expect(0, `Loading demo: layer 2/2, [0-9.]+[kM]?B\s*\r?\n(.|\n)*Loaded image: demo`, 5*time.Second)
}

func TestImageCommitExportImport(t *testing.T) {
	f := newFK(t)
	net := []string{"--net", "none"}
	run := func(args ...string) string { return f.ok(append(append([]string{"run"}, net...), args...)...) }
	// Cgroups are machine-wide: names unique to this run.
	c1, c2, live := uniq("img-c1"), uniq("img-c2"), uniq("img-live")

	run("--name", c1, "busybox", "sh", "-c", "echo changed > /etc/motd; rm /bin/vi; mkdir /app; echo one > /app/x")
	if out := f.ok("commit", c1, "snap"); !strings.Contains(out, "snap") {
		t.Errorf("commit printed %q", out)
	}
	tarPath := filepath.Join(f.image, "snap.tar")
	before := treeSnapshot(t, tarPath)
	if r := f.fails(125, "commit", c1, "snap"); !strings.Contains(r.stderr, "exists") {
		t.Errorf("commit over an image: %s", r)
	}
	if d := diffSnapshots(before, treeSnapshot(t, tarPath)); len(d) > 0 {
		t.Errorf("a refused commit changed the image: %v", d)
	}
	if got := run("--rm", "snap", "sh", "-c", "cat /etc/motd /app/x; test -e /bin/vi && echo vi || echo no-vi"); got != "changed\none\nno-vi\n" {
		t.Errorf("committed image: %q", got)
	}

	// -f replaces an image no container uses, and never one that is used.
	run("--name", c2, "snap", "sh", "-c", "echo two > /app/x")
	f.ok("commit", c1, "other")
	if r := f.fails(125, "commit", "-f", c2, "snap"); !strings.Contains(r.stderr, c2) {
		t.Errorf("commit -f over an image c2 uses: %s", r)
	}
	f.ok("commit", "-f", c2, "other")
	if got := run("--rm", "other", "cat", "/app/x"); got != "two\n" {
		t.Errorf("replaced image: %q", got)
	}

	// export -> import: the container's file system and nothing else (no /proc contents).
	exported := filepath.Join(t.TempDir(), "c2.tar")
	f.ok("export", c2, "-o", exported)
	names := tarNames(t, exported)
	if names["app/x"] != "two\n" || names["etc/motd"] != "changed\n" {
		t.Errorf("export: app/x=%q etc/motd=%q", names["app/x"], names["etc/motd"])
	}
	for n := range names {
		if strings.HasPrefix(n, "proc/") && n != "proc/" || strings.HasPrefix(n, "/") || strings.HasPrefix(n, "..") {
			t.Errorf("export holds %q", n)
		}
	}
	if _, ok := names["bin/vi"]; ok {
		t.Error("export holds bin/vi, deleted in the container")
	}
	f.ok("import", exported, "imported")
	if got := run("--rm", "imported", "sh", "-c", "cat /app/x /etc/motd"); got != "two\nchanged\n" {
		t.Errorf("imported image: %q", got)
	}
	// stdout when it is not a terminal.
	if r := f.run("export", c2); r.code != 0 || !bytes.Contains([]byte(r.stdout), []byte("two\n")) {
		t.Errorf("export to stdout: exit %d, %d bytes", r.code, len(r.stdout))
	}

	// A running container: commit and export see what it wrote, and it keeps running.
	f.ok("run", "-d", "--net", "none", "--name", live, "busybox", "sh", "-c", "echo live > /live; exec sleep 1000")
	waitFor(t, "the container's write", 10*time.Second, func() bool {
		r := f.run("exec", live, "cat", "/live")
		return r.code == 0 && r.stdout == "live\n"
	})
	f.ok("commit", live, "livesnap")
	if got := run("--rm", "livesnap", "cat", "/live"); got != "live\n" {
		t.Errorf("image of a running container: %q", got)
	}
	if st := f.record(live)["status"]; st != "running" {
		t.Errorf("after commit the container is %v", st)
	}
	if m := hostMounts(t, f.image); m != "" {
		t.Errorf("the commit left mounts on the host:\n%s", m)
	}

	// image rm: refused while a container, running or stopped, uses the image.
	for img, user := range map[string]string{"busybox": c1, "snap": c2} {
		if r := f.fails(125, "image", "rm", img); !strings.Contains(r.stderr, user) {
			t.Errorf("image rm %s: %s", img, r)
		}
	}
	f.ok("rm", c2)
	f.ok("image", "rm", "snap")
	for _, p := range []string{"snap", "snap.tar", ".meta/snap.json"} {
		if _, err := os.Lstat(filepath.Join(f.image, p)); err == nil {
			t.Errorf("%s left after image rm", p)
		}
	}
	if r := f.fails(125, "image", "rm", "snap"); !strings.Contains(r.stderr, "no such image") {
		t.Errorf("second image rm: %s", r)
	}
	out := f.ok("image", "ls")
	for _, want := range []string{"NAME", "SIZE", "CREATED", "SOURCE", "other", "commit " + c2, "imported", "import " + exported} {
		if !strings.Contains(out, want) {
			t.Errorf("image ls lacks %q:\n%s", want, out)
		}
	}
}

// tarNames reads a tar into name -> content (regular files) or "" (others).
func tarNames(t *testing.T, path string) map[string]string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string]string{}
	tr := tar.NewReader(fh)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// TestImageHostileArchivesRejected: archives that try to leave the image, or lie about their
// content, are refused with 125 and leave the image root exactly as it was.
func TestImageHostileArchivesRejected(t *testing.T) {
	f := newFK(t)
	work := t.TempDir()
	outside := filepath.Join(work, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	one := func(layer []byte) archiveImage {
		return archiveImage{layers: [][]byte{buildTar(t, "", regular("ok", "fine")), layer}}
	}
	lying := one(buildTar(t, "", regular("a", "a")))
	lying.diffIDs = []string{"sha256:" + sha(lying.layers[0]), "sha256:" + sha([]byte("not this"))}
	for _, tc := range []struct {
		name  string
		args  func(path string) []string
		write func(path string)
	}{
		{"load: dot-dot", nil, func(p string) { one(buildTar(t, "", regular("../../escape", "x"))).writeOCI(t, p, "x/evil:1") }},
		{"load: absolute", nil, func(p string) {
			one(buildTar(t, "", regular(filepath.Join(outside, "abs"), "x"))).writeDocker(t, p, "evil:1")
		}},
		{"load: hard link out", nil, func(p string) {
			one(buildTar(t, "", tarEntry{name: "h", link: "../../../../etc/passwd", typ: tar.TypeLink})).writeOCI(t, p, "x/evil:1")
		}},
		{"load: blob is a symlink", nil, func(p string) {
			one(buildTar(t, "", regular("a", "a"))).writeOCI(t, p, "x/evil:1",
				tarEntry{name: "blobs/sha256/" + strings.Repeat("a", 64), link: "/etc/shadow", typ: tar.TypeSymlink})
		}},
		{"load: content differs from diff ID", nil, func(p string) { lying.writeDocker(t, p, "evil:1") }},
		{"load: not an image", nil, func(p string) { os.WriteFile(p, buildTar(t, "", regular("x", "x")), 0o644) }},
		{"import: dot-dot", func(p string) []string { return []string{"import", p, "evil"} },
			func(p string) { os.WriteFile(p, buildTar(t, "", regular("ok", "x"), regular("../escape", "x")), 0o644) }},
		{"import: hard link out", func(p string) []string { return []string{"import", p, "evil"} },
			func(p string) {
				os.WriteFile(p, buildTar(t, "", tarEntry{name: "h", link: "/etc/passwd", typ: tar.TypeLink}), 0o644)
			}},
		{"import: reserved name", func(p string) []string { return []string{"import", p, "mnt"} },
			func(p string) { os.WriteFile(p, buildTar(t, "", regular("ok", "x")), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			p := filepath.Join(work, strings.NewReplacer(" ", "-", ":", "").Replace(tc.name)+".tar")
			tc.write(p)
			args := []string{"load", "-i", p}
			if tc.args != nil {
				args = tc.args(p)
			}
			imageBefore, workBefore := treeSnapshot(t, f.image), treeSnapshot(t, work)
			r := f.fails(125, args...)
			why := "unsafe path"
			switch {
			case strings.Contains(tc.name, "diff ID"):
				why = "corrupt image archive"
			case strings.Contains(tc.name, "not an image"):
				why = "unknown image archive format"
			case strings.Contains(tc.name, "reserved"):
				why = "reserved"
			}
			if !strings.Contains(r.stderr, why) || strings.Contains(r.stderr, "panic") {
				t.Errorf("stderr %q does not say %q", r.stderr, why)
			}
			if d := diffSnapshots(imageBefore, treeSnapshot(t, f.image)); len(d) > 0 {
				t.Errorf("image root changed: %v", d)
			}
			if d := diffSnapshots(workBefore, treeSnapshot(t, work)); len(d) > 0 {
				t.Errorf("files around the archive changed: %v", d)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f.image), "escape")); err == nil {
				t.Error("an entry escaped the image")
			}
		})
	}

	// A symlink to a host directory, then a file through it: the file lands inside the
	// image, where the symlink points as the container sees it, and the host's stays empty.
	img := archiveImage{layers: [][]byte{
		buildTar(t, shared.imageSrc, tarEntry{name: "evil", link: outside, typ: tar.TypeSymlink}),
		buildTar(t, "", regular("evil/pwned", "contained")),
	}}
	arch := filepath.Join(work, "symlink.tar")
	img.writeOCI(t, arch, "x/contained:1")
	f.ok("load", "-i", arch)
	if ents, _ := os.ReadDir(outside); len(ents) > 0 {
		t.Fatalf("the load wrote through a symlink to the host: %v", ents)
	}
	if got := f.ok("run", "--rm", "--net", "none", "contained", "cat", "/evil/pwned"); got != "contained" {
		t.Errorf("container sees %q", got)
	}
}
