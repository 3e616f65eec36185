package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// blob is content addressed by its sha256.
type blob struct {
	data   []byte
	digest string // sha256:<hex>
}

func newBlob(b []byte) blob {
	sum := sha256.Sum256(b)
	return blob{data: b, digest: "sha256:" + hex.EncodeToString(sum[:])}
}

func (b blob) hex() string { return strings.TrimPrefix(b.digest, "sha256:") }

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testImage is a two-layer image: a base, then a layer with a whiteout and an opaque dir.
type testImage struct {
	layers  [][]byte // uncompressed
	config  blob
	diffIDs []string
}

func newTestImage(t *testing.T, corruptDiffID bool) testImage {
	base := tarBytes(t,
		dir("bin/"), file("bin/tool", "v1"),
		file("etc/old.conf", "old"),
		dir("data/"), file("data/stale", "s"),
	)
	top := tarBytes(t,
		file("bin/tool", "v2"),
		file("etc/.wh.old.conf", ""),
		file("data/.wh..wh..opq", ""),
		file("data/fresh", "f"),
		dir("work/"),
	)
	img := testImage{layers: [][]byte{base, top}}
	for _, l := range img.layers {
		img.diffIDs = append(img.diffIDs, newBlob(l).digest)
	}
	if corruptDiffID {
		img.diffIDs[1] = newBlob([]byte("something else")).digest
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
		"config": map[string]any{"Env": []string{"PATH=/bin", "GREETING=hi"}, "Cmd": []string{"tool", "run"},
			"Entrypoint": []string{"/bin/tool"}, "WorkingDir": "/work", "User": "1000:1000"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": img.diffIDs},
	})
	img.config = newBlob(cfg)
	return img
}

func writeTar(t *testing.T, path string, files map[string][]byte, order []string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range order {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ociArchive writes the image as an OCI image layout tar (first layer gzip-compressed).
func (img testImage) ociArchive(t *testing.T, path, refName string) {
	files := map[string][]byte{}
	var order []string
	add := func(name string, b []byte) { files[name] = b; order = append(order, name) }
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var layers []map[string]any
	for i, l := range img.layers {
		mt := "application/vnd.oci.image.layer.v1.tar"
		if i == 0 {
			l, mt = gzipped(t, l), mt+"+gzip"
		}
		b := newBlob(l)
		add("blobs/sha256/"+b.hex(), l)
		layers = append(layers, map[string]any{"mediaType": mt, "digest": b.digest, "size": len(l)})
	}
	add("blobs/sha256/"+img.config.hex(), img.config.data)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.config.digest, "size": len(img.config.data)},
		"layers": layers})
	mb := newBlob(man)
	add("blobs/sha256/"+mb.hex(), man)
	desc := map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mb.digest, "size": len(man)}
	if refName != "" {
		desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": refName}
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{desc}})
	add("index.json", idx)
	writeTar(t, path, files, order)
}

// dockerArchive writes the image the way `docker save` did before docker 25.
func (img testImage) dockerArchive(t *testing.T, path string, tags ...string) {
	files := map[string][]byte{}
	var order []string
	add := func(name string, b []byte) { files[name] = b; order = append(order, name) }
	var layerPaths []string
	for _, l := range img.layers {
		p := newBlob(l).hex() + "/layer.tar"
		add(p, l)
		layerPaths = append(layerPaths, p)
	}
	add(img.config.hex()+".json", img.config.data)
	man, _ := json.Marshal([]map[string]any{{"Config": img.config.hex() + ".json", "RepoTags": tags, "Layers": layerPaths}})
	add("manifest.json", man)
	writeTar(t, path, files, order)
}

func wantLoaded(t *testing.T, s *Store, name string) {
	t.Helper()
	img, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if img.Form != FormDir {
		t.Errorf("form %q", img.Form)
	}
	if got, want := tree(t, filepath.Join(s.root, name)), "bin/ bin/tool=v2 data/ data/fresh=f etc/ work/"; got != want {
		t.Errorf("rootfs:\n got %q\nwant %q", got, want)
	}
	want := Config{Env: []string{"PATH=/bin", "GREETING=hi"}, Entrypoint: []string{"/bin/tool"}, Cmd: []string{"tool", "run"},
		WorkingDir: "/work", User: "1000:1000"}
	cfg, err := s.Config(name)
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %+v, %v; want %+v", cfg, err, want)
	}
	if img.Created.Year() != 2024 || img.ID == "" || img.Size != 3 {
		t.Errorf("record %+v", img.Meta)
	}
}

// onlyImages checks that the image root holds exactly these entries: nothing temporary left.
func onlyImages(t *testing.T, root string, want ...string) {
	t.Helper()
	ents, _ := os.ReadDir(root)
	var got []string
	for _, e := range ents {
		if e.Name() != metaDir {
			got = append(got, e.Name())
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("image root holds %v, want %v", got, want)
	}
	metas, _ := filepath.Glob(filepath.Join(root, metaDir, "*.json"))
	if len(metas) != len(want) {
		t.Errorf("records %v for images %v", metas, want)
	}
}

func TestLoadOCIArchive(t *testing.T) {
	work := t.TempDir()
	s := NewStore(filepath.Join(work, "images"), nil)
	arch := filepath.Join(work, "demo-oci.tar")
	newTestImage(t, false).ociArchive(t, arch, "registry.example:5000/team/demo:1.0")
	metas, err := s.Load(arch, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].Name != "demo" || metas[0].Ref != "registry.example:5000/team/demo:1.0" ||
		!strings.HasPrefix(metas[0].Source, "load oci-archive ") {
		t.Fatalf("loaded %+v", metas[0])
	}
	wantLoaded(t, s, "demo")
	onlyImages(t, s.root, "demo")

	// A bare tag names nothing: the file does.
	arch2 := filepath.Join(work, "other.tar")
	newTestImage(t, false).ociArchive(t, arch2, "1.0")
	if metas, err = s.Load(arch2, LoadOptions{}); err != nil || metas[0].Name != "other" {
		t.Fatalf("load: %v %+v", err, metas)
	}
	// The same name again: refused without -f, replaced with it.
	if _, err := s.Load(arch, LoadOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second load: %v, want ErrExists", err)
	}
	if _, err := s.Load(arch, LoadOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	wantLoaded(t, s, "demo")
	onlyImages(t, s.root, "demo", "other")
}

func TestLoadOCILayoutDirectory(t *testing.T) {
	work := t.TempDir()
	s := NewStore(filepath.Join(work, "images"), nil)
	arch := filepath.Join(work, "demo.tar")
	newTestImage(t, false).ociArchive(t, arch, "")
	layoutDir := filepath.Join(work, "layout")
	os.Mkdir(layoutDir, 0o755)
	f, _ := os.Open(arch)
	defer f.Close()
	if err := Untar(f, layoutDir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(layoutDir, LoadOptions{Name: "fromdir"}); err != nil {
		t.Fatal(err)
	}
	wantLoaded(t, s, "fromdir")
}

func TestLoadDockerArchive(t *testing.T) {
	work := t.TempDir()
	s := NewStore(filepath.Join(work, "images"), nil)
	arch := filepath.Join(work, "demo.tar")
	newTestImage(t, false).dockerArchive(t, arch, "demo:latest")
	var progress bytes.Buffer
	metas, err := s.Load(arch, LoadOptions{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if metas[0].Name != "demo" || !strings.HasPrefix(metas[0].Source, "load docker-archive ") {
		t.Fatalf("loaded %+v", metas[0])
	}
	if !strings.Contains(progress.String(), "Loading demo: layer 2/2") {
		t.Errorf("progress %q", progress.String())
	}
	wantLoaded(t, s, "demo")
	if _, err := s.Load(arch, LoadOptions{Name: "renamed"}); err != nil {
		t.Fatal(err)
	}
	wantLoaded(t, s, "renamed")
	onlyImages(t, s.root, "demo", "renamed")
}

// TestLoadFailuresLeaveNothing: corrupt content, hostile layers and unknown archives are
// refused with the image root as it was.
func TestLoadFailuresLeaveNothing(t *testing.T) {
	work := t.TempDir()
	hostile := newTestImage(t, false)
	hostile.layers[1] = tarBytes(t, file("ok", "x"), file("../../escape", "x"))
	hostile.diffIDs[1] = newBlob(hostile.layers[1]).digest
	cfg, _ := json.Marshal(map[string]any{"os": "linux", "architecture": "amd64",
		"rootfs": map[string]any{"type": "layers", "diff_ids": hostile.diffIDs}})
	hostile.config = newBlob(cfg)

	for _, tc := range []struct {
		name  string
		write func(path string)
		want  error
	}{
		{"diff id mismatch (oci)", func(p string) { newTestImage(t, true).ociArchive(t, p, "x/bad:1") }, ErrCorrupt},
		{"diff id mismatch (docker)", func(p string) { newTestImage(t, true).dockerArchive(t, p, "bad:1") }, ErrCorrupt},
		{"escaping layer (oci)", func(p string) { hostile.ociArchive(t, p, "x/bad:1") }, ErrUnsafeArchive},
		{"escaping layer (docker)", func(p string) { hostile.dockerArchive(t, p, "bad:1") }, ErrUnsafeArchive},
		{"symlinked blob", func(p string) {
			img := newTestImage(t, false)
			img.ociArchive(t, p, "x/bad:1")
			b, _ := os.ReadFile(p)
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + strings.Repeat("0", 64), Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
			tw.Flush()
			os.WriteFile(p, append(buf.Bytes(), b...), 0o644)
		}, ErrUnsafeArchive},
		{"not an image", func(p string) { os.WriteFile(p, tarBytes(t, file("hello", "x")), 0o644) }, ErrUnknownFormat},
		{"not a tar", func(p string) { os.WriteFile(p, []byte("garbage garbage"), 0o644) }, ErrUnknownFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(filepath.Join(t.TempDir(), "images"), nil)
			os.MkdirAll(s.root, 0o755)
			p := filepath.Join(work, strings.ReplaceAll(tc.name, " ", "_")+".tar")
			tc.write(p)
			_, err := s.Load(p, LoadOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			onlyImages(t, s.root)
			if _, err := os.Stat(filepath.Join(work, "escape")); err == nil {
				t.Fatal("a layer wrote outside the image")
			}
		})
	}
}

func TestRepositoryName(t *testing.T) {
	for ref, want := range map[string]string{
		"alpine":                                  "alpine",
		"alpine:3.19":                             "alpine",
		"docker.io/library/alpine:3.19":           "alpine",
		"localhost:5000/team/app":                 "app",
		"localhost:5000/team/app:v2@sha256:abcd":  "app",
		"quay.io/podman/hello@sha256:0123456789a": "hello",
		"": "",
	} {
		if got := repositoryName(ref); got != want {
			t.Errorf("repositoryName(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 4_300_000: "4.3MB", 1_250_000_000: "1.25GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
