package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// rawZstd frames b as Zstandard with raw (stored) blocks: a valid stream any decoder reads.
func rawZstd(b []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	out = append(out, 0x00, 0x58) // no content size, no checksum; window descriptor: 8 MiB
	for {
		n := min(len(b), zstdMaxBlock)
		hdr := uint32(n) << 3 // raw block
		if n == len(b) {
			hdr |= 1 // last
		}
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		out = append(out, b[:n]...)
		b = b[n:]
		if hdr&1 == 1 {
			return out
		}
	}
}

// layoutFiles writes an OCI image layout's files for img with its layers compressed by
// compress[i] (nil: plain), under the media type suffix suffix[i]; index is the index.json's
// descriptors, built by the caller from the manifest descriptor it is given.
func (img testImage) layoutFiles(t *testing.T, compress []func([]byte) []byte, suffix []string) (map[string][]byte, []string, map[string]any) {
	files := map[string][]byte{}
	var order []string
	add := func(name string, b []byte) {
		if _, ok := files[name]; !ok {
			order = append(order, name)
		}
		files[name] = b
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var layers []map[string]any
	for i, l := range img.layers {
		mt := "application/vnd.oci.image.layer.v1.tar"
		if compress[i] != nil {
			l, mt = compress[i](l), mt+suffix[i]
		}
		b := newBlob(l)
		add("blobs/sha256/"+b.hex(), l)
		layers = append(layers, map[string]any{"mediaType": mt, "digest": b.digest, "size": len(l)})
	}
	add("blobs/sha256/"+img.config.hex(), img.config.data)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.config.digest, "size": len(img.config.data)},
		"layers": layers})
	mb := newBlob(man)
	add("blobs/sha256/"+mb.hex(), man)
	return files, order, map[string]any{"mediaType": mediaOCIManifest, "digest": mb.digest, "size": len(man)}
}

func writeLayoutDir(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func indexJSON(descs ...any) []byte {
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaOCIIndex, "manifests": descs})
	return b
}

// TestLoadZstdLayers: "+zstd" layers are decompressed, whatever else the image mixes in.
func TestLoadZstdLayers(t *testing.T) {
	work := t.TempDir()
	img := newTestImage(t, false)
	gz := func(b []byte) []byte { return gzipped(t, b) }
	files, _, desc := img.layoutFiles(t, []func([]byte) []byte{rawZstd, gz}, []string{"+zstd", "+gzip"})
	files["index.json"] = indexJSON(desc)
	layout := filepath.Join(work, "layout")
	writeLayoutDir(t, layout, files)
	s := NewStore(filepath.Join(work, "images"), nil)
	if _, err := s.Load(layout, LoadOptions{Name: "zstd"}); err != nil {
		t.Fatal(err)
	}
	wantLoaded(t, s, "zstd")

	// Compressed for real by the reference implementation, when it is installed.
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Log("the zstd command is not installed: only stored zstd blocks were tried")
		return
	}
	ref := func(b []byte) []byte {
		cmd := exec.Command(bin, "-q", "-c", "-19")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	files, _, desc = img.layoutFiles(t, []func([]byte) []byte{ref, ref}, []string{"+zstd", "+zstd"})
	files["index.json"] = indexJSON(desc)
	layout2 := filepath.Join(work, "layout2")
	writeLayoutDir(t, layout2, files)
	if _, err := s.Load(layout2, LoadOptions{Name: "zstd2"}); err != nil {
		t.Fatal(err)
	}
	wantLoaded(t, s, "zstd2")
}

// TestLoadMultiPlatform: an index of platforms gives this machine's image.
func TestLoadMultiPlatform(t *testing.T) {
	work := t.TempDir()
	img := newTestImage(t, false)
	files, _, desc := img.layoutFiles(t, []func([]byte) []byte{nil, nil}, []string{"", ""})
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	// The other platform's manifest names a config that is not there: choosing it fails.
	bogus, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": newBlob([]byte("x")).digest, "size": 1}})
	bb := newBlob(bogus)
	files["blobs/sha256/"+bb.hex()] = bogus
	mine := map[string]any{"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
		"platform": map[string]string{"os": runtime.GOOS, "architecture": runtime.GOARCH}}
	theirs := map[string]any{"mediaType": mediaOCIManifest, "digest": bb.digest, "size": len(bogus),
		"platform": map[string]string{"os": "linux", "architecture": other}}
	child := indexJSON(theirs, mine)
	cb := newBlob(child)
	files["blobs/sha256/"+cb.hex()] = child
	files["index.json"] = indexJSON(map[string]any{"mediaType": mediaOCIIndex, "digest": cb.digest, "size": len(child),
		"annotations": map[string]string{annotationRefName: "example.org/multi:1"}})
	layout := filepath.Join(work, "layout")
	writeLayoutDir(t, layout, files)
	s := NewStore(filepath.Join(work, "images"), nil)
	metas, err := s.Load(layout, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if metas[0].Name != "multi" || metas[0].ID != img.config.digest {
		t.Errorf("loaded %+v", metas[0])
	}
	wantLoaded(t, s, "multi")

	// Without this platform, nothing is loaded.
	files["blobs/sha256/"+cb.hex()] = nil
	delete(files, "blobs/sha256/"+cb.hex())
	only := indexJSON(theirs)
	ob := newBlob(only)
	files["blobs/sha256/"+ob.hex()] = only
	files["index.json"] = indexJSON(map[string]any{"mediaType": mediaOCIIndex, "digest": ob.digest, "size": len(only)})
	layout2 := filepath.Join(work, "layout2")
	writeLayoutDir(t, layout2, files)
	if _, err := s.Load(layout2, LoadOptions{Name: "none"}); err == nil || !strings.Contains(err.Error(), "no image for") {
		t.Errorf("load without this platform: %v", err)
	}
	onlyImages(t, s.root, "multi")
}

// TestLoadCheckedBlobs: a manifest or config that is not what its digest says, a digest
// that could be a path, a layer missing, are all refused as corrupt, with nothing installed.
func TestLoadCheckedBlobs(t *testing.T) {
	img := newTestImage(t, false)
	for _, tc := range []struct {
		name   string
		change func(files map[string][]byte, desc map[string]any)
	}{
		{"manifest changed", func(files map[string][]byte, desc map[string]any) {
			p := "blobs/sha256/" + strings.TrimPrefix(desc["digest"].(string), "sha256:")
			files[p] = append(files[p], ' ')
			files["index.json"] = indexJSON(desc)
		}},
		{"config changed", func(files map[string][]byte, desc map[string]any) {
			files["blobs/sha256/"+img.config.hex()] = bytes.Replace(img.config.data, []byte("GREETING=hi"), []byte("GREETING=ho"), 1)
			files["index.json"] = indexJSON(desc)
		}},
		{"digest as a path", func(files map[string][]byte, desc map[string]any) {
			desc["digest"] = "sha256:../../../etc/passwd"
			files["index.json"] = indexJSON(desc)
		}},
		{"unknown algorithm", func(files map[string][]byte, desc map[string]any) {
			desc["digest"] = "md5:" + strings.Repeat("0", 32)
			files["index.json"] = indexJSON(desc)
		}},
		{"layer missing", func(files map[string][]byte, desc map[string]any) {
			delete(files, "blobs/sha256/"+newBlob(img.layers[1]).hex())
			files["index.json"] = indexJSON(desc)
		}},
		{"layer truncated", func(files map[string][]byte, desc map[string]any) {
			p := "blobs/sha256/" + newBlob(img.layers[0]).hex()
			files[p] = files[p][:len(files[p])/2]
			files["index.json"] = indexJSON(desc)
		}},
		{"index not JSON", func(files map[string][]byte, desc map[string]any) {
			files["index.json"] = []byte("{")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			files, _, desc := img.layoutFiles(t, []func([]byte) []byte{nil, nil}, []string{"", ""})
			tc.change(files, desc)
			layout := filepath.Join(work, "layout")
			writeLayoutDir(t, layout, files)
			s := NewStore(filepath.Join(work, "images"), nil)
			os.MkdirAll(s.root, 0o755)
			if _, err := s.Load(layout, LoadOptions{Name: "x"}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %v, want ErrCorrupt", err)
			}
			onlyImages(t, s.root)
		})
	}
}

// TestLoadDockerArchiveVariants: gzip-compressed layers, a layer that links to another
// image's identical one (docker save before 25), docker 25's blobs/ paths, two images.
func TestLoadDockerArchiveVariants(t *testing.T) {
	work := t.TempDir()
	img := newTestImage(t, false)
	l0, l1 := newBlob(img.layers[0]).hex(), newBlob(img.layers[1]).hex()
	cfg2 := bytes.Replace(img.config.data, []byte("GREETING=hi"), []byte("GREETING=two"), 1)
	c2 := newBlob(cfg2)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(h *tar.Header, b []byte) {
		h.Size = int64(len(b))
		if h.Typeflag == 0 {
			h.Typeflag, h.Mode = tar.TypeReg, 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	put(&tar.Header{Name: "blobs/sha256/" + l0}, gzipped(t, img.layers[0]))
	put(&tar.Header{Name: "blobs/sha256/" + l1}, img.layers[1])
	put(&tar.Header{Name: "blobs/sha256/" + img.config.hex()}, img.config.data)
	put(&tar.Header{Name: "old/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../blobs/sha256/" + l0, Mode: 0o777}, nil)
	put(&tar.Header{Name: "old2/layer.tar", Typeflag: tar.TypeLink, Linkname: "blobs/sha256/" + l1, Mode: 0o644}, nil)
	put(&tar.Header{Name: c2.hex() + ".json"}, cfg2)
	man, _ := json.Marshal([]map[string]any{
		{"Config": "blobs/sha256/" + img.config.hex(), "RepoTags": []string{"docker.io/library/one:latest"}, "Layers": []string{"blobs/sha256/" + l0, "blobs/sha256/" + l1}},
		{"Config": c2.hex() + ".json", "RepoTags": []string{"localhost:5000/team/two:v2"}, "Layers": []string{"old/layer.tar", "old2/layer.tar"}},
	})
	put(&tar.Header{Name: "manifest.json"}, man)
	tw.Close()
	arch := filepath.Join(work, "two.tar")
	os.WriteFile(arch, buf.Bytes(), 0o644)
	s := NewStore(filepath.Join(work, "images"), nil)
	metas, err := s.Load(arch, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 2 || metas[0].Name != "one" || metas[1].Name != "two" || metas[1].ID != c2.digest || metas[0].ID != img.config.digest {
		t.Fatalf("loaded %+v %+v", metas[0], metas[1])
	}
	wantLoaded(t, s, "one")
	if got := tree(t, filepath.Join(s.root, "two")); got != "bin/ bin/tool=v2 data/ data/fresh=f etc/ work/" {
		t.Errorf("two: %s", got)
	}
	if cfg, _ := s.Config("two"); len(cfg.Env) != 2 || cfg.Env[1] != "GREETING=two" {
		t.Errorf("two's config %+v", cfg)
	}
}

func TestCheckRepoTag(t *testing.T) {
	for _, good := range []string{"alpine", "alpine:3.19", "docker.io/library/alpine:3.19", "localhost:5000/team/app:v2",
		"localhost/app", "registry.example.org/a/b/c:latest", "[::1]:5000/x:y", "10.0.0.1:5000/x", "a_b.c-d:T_a.g-1"} {
		if err := checkRepoTag(good); err != nil {
			t.Errorf("checkRepoTag(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "Alpine:1", "alpine:", "alpine:a b", "alpine:" + strings.Repeat("x", 129), "reg:/x",
		"bad host!/x:1", "alpine@sha256:00", "a\nb", "x:" + "y/z"} {
		if err := checkRepoTag(bad); err == nil {
			t.Errorf("checkRepoTag(%q) accepted", bad)
		}
	}
}
