package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// This file reads the images of OCI image layouts (a directory: index.json, blobs/ALG/HEX)
// and of docker-save archives (a tar: manifest.json naming a config file and layer files per
// image), the two formats Load takes. Manifests and configs are checked against their
// digests; layers are checked against the config's diff IDs as they are applied.

// maxMetaSize bounds an index, manifest, config or manifest.json read into memory.
const maxMetaSize = 16 << 20

// Media types of manifests and indexes, OCI's and docker's.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// source is one image found in an archive.
type source struct {
	ref      string // repository:tag as the archive gives it, or ""
	id       string // its config's digest, "sha256:<hex>": the image's ID
	config   imageConfig
	layers   []layerOpener // in order, base first
	diffIDs  []string      // config.RootFS.DiffIDs
	location string        // where it was found, for errors
}

// layerOpener opens a layer's content as stored (plain, gzip or zstd).
type layerOpener func() (io.ReadCloser, error)

// imageConfig is what fockker reads of an image's config (OCI image spec, config.md).
type imageConfig struct {
	Created *time.Time `json:"created,omitempty"`
	Config  struct {
		Env        []string `json:"Env"`
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
		WorkingDir string   `json:"WorkingDir"`
		User       string   `json:"User"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// descriptor points at a blob of an OCI layout.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	Manifests []descriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// parseDigest splits "ALG:HEX" and checks it: sha256 or sha512, lowercase hex of the right
// length. Such a digest is safe as a path (blobs/ALG/HEX).
func parseDigest(d string) (alg, hexPart string, err error) {
	alg, hexPart, _ = strings.Cut(d, ":")
	want := 0
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	}
	if want == 0 || len(hexPart) != want || !onlyChars(hexPart, "0123456789abcdef") {
		return "", "", fmt.Errorf("digest %q: want sha256:<64 hex> or sha512:<128 hex>: %w", d, ErrCorrupt)
	}
	return alg, hexPart, nil
}

// checkDigest verifies that b has the digest d.
func checkDigest(b []byte, d string) error {
	alg, want, err := parseDigest(d)
	if err != nil {
		return err
	}
	var h hash.Hash = sha256.New()
	if alg == "sha512" {
		h = sha512.New()
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("content is %s:%s, not %s: %w", alg, got, d, ErrCorrupt)
	}
	return nil
}

// readLimited reads all of r, refusing more than maxMetaSize bytes.
func readLimited(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetaSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetaSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", what, maxMetaSize, ErrCorrupt)
	}
	return b, nil
}

// decodeJSON decodes one JSON document, reporting a malformed one as corrupt.
func decodeJSON(b []byte, v any, what string) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %v: %w", what, err, ErrCorrupt)
	}
	return nil
}

// parseConfig decodes an image config and checks its diff IDs.
func parseConfig(b []byte, what string) (imageConfig, error) {
	var c imageConfig
	if err := decodeJSON(b, &c, what); err != nil {
		return c, err
	}
	for _, d := range c.RootFS.DiffIDs {
		if _, _, err := parseDigest(d); err != nil {
			return c, fmt.Errorf("%s: diff ID: %w", what, err)
		}
	}
	return c, nil
}

// ociLayout reads the blobs of an OCI image layout directory.
type ociLayout struct{ dir string }

func (l ociLayout) blobPath(d string) (string, error) {
	alg, h, err := parseDigest(d)
	if err != nil {
		return "", err
	}
	return filepath.Join(l.dir, "blobs", alg, h), nil
}

// blob reads a manifest, index or config blob and checks it against its digest and size.
func (l ociLayout) blob(d descriptor) ([]byte, error) {
	p, err := l.blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %v: %w", d.Digest, err, ErrCorrupt)
	}
	defer f.Close()
	b, err := readLimited(f, "blob "+d.Digest)
	if err != nil {
		return nil, err
	}
	if d.Size > 0 && int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, its descriptor says %d: %w", d.Digest, len(b), d.Size, ErrCorrupt)
	}
	if err := checkDigest(b, d.Digest); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return b, nil
}

// ociImages returns the images an OCI layout's index.json names; an index (a multi-platform
// image) gives its image for this machine's platform.
func ociImages(dir string) ([]source, error) {
	l := ociLayout{dir: dir}
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("index.json: %v: %w", err, ErrCorrupt)
	}
	b, err := readLimited(f, "index.json")
	f.Close()
	if err != nil {
		return nil, err
	}
	var idx ociIndex
	if err := decodeJSON(b, &idx, "index.json"); err != nil {
		return nil, err
	}
	var srcs []source
	for _, d := range idx.Manifests {
		src, err := l.resolve(d, 0)
		if err != nil {
			return nil, err
		}
		src.ref = d.Annotations[annotationContainerdName]
		if src.ref == "" {
			// By the spec this may be a tag alone ("3.19"): only a full reference names.
			if r := d.Annotations[annotationRefName]; strings.ContainsAny(r, ":/") {
				src.ref = r
			}
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// resolve returns the image a descriptor names, choosing this platform in an index.
func (l ociLayout) resolve(d descriptor, depth int) (source, error) {
	switch {
	case d.MediaType == mediaOCIManifest || d.MediaType == mediaDockerManifest:
		return l.image(d)
	case (d.MediaType == mediaOCIIndex || d.MediaType == mediaDockerList) && depth < 4:
		b, err := l.blob(d)
		if err != nil {
			return source{}, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		var child ociIndex
		if err := decodeJSON(b, &child, "index "+d.Digest); err != nil {
			return source{}, err
		}
		for _, c := range child.Manifests {
			p := c.Platform
			if (p != nil && p.OS == runtime.GOOS && p.Architecture == runtime.GOARCH) ||
				(p == nil && len(child.Manifests) == 1) {
				return l.resolve(c, depth+1)
			}
		}
		return source{}, fmt.Errorf("index %s has no image for %s/%s", d.Digest, runtime.GOOS, runtime.GOARCH)
	}
	return source{}, fmt.Errorf("descriptor %s: unsupported media type %q: %w", d.Digest, d.MediaType, ErrUnknownFormat)
}

// image reads an image manifest and its config.
func (l ociLayout) image(d descriptor) (source, error) {
	where := "manifest " + d.Digest
	b, err := l.blob(d)
	if err != nil {
		return source{}, fmt.Errorf("%s: %w", where, err)
	}
	var m ociManifest
	if err := decodeJSON(b, &m, where); err != nil {
		return source{}, err
	}
	cb, err := l.blob(m.Config)
	if err != nil {
		return source{}, fmt.Errorf("%s: config: %w", where, err)
	}
	cfg, err := parseConfig(cb, where+": config")
	if err != nil {
		return source{}, err
	}
	src := source{id: m.Config.Digest, config: cfg, diffIDs: cfg.RootFS.DiffIDs, location: where}
	for _, ld := range m.Layers {
		p, err := l.blobPath(ld.Digest)
		if err != nil {
			return source{}, fmt.Errorf("%s: layer: %w", where, err)
		}
		src.layers = append(src.layers, func() (io.ReadCloser, error) { return os.Open(p) })
	}
	return src, nil
}

// dockerManifest is one image of a docker-save archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerImages returns the images of a docker-save archive, read in place.
func dockerImages(archive string) ([]source, error) {
	b, err := tarFileBytes(archive, "manifest.json")
	if err != nil {
		return nil, err
	}
	var m []dockerManifest
	if err := decodeJSON(b, &m, "manifest.json"); err != nil {
		return nil, err
	}
	var srcs []source
	for i, d := range m {
		ref := ""
		if len(d.RepoTags) > 0 {
			if err := checkRepoTag(d.RepoTags[0]); err != nil {
				return nil, fmt.Errorf("manifest.json: tag %q: %v: %w", d.RepoTags[0], err, ErrCorrupt)
			}
			ref = d.RepoTags[0]
		} else if len(m) > 1 {
			return nil, fmt.Errorf("manifest.json: image %d of %d has no tag to tell it apart: %w", i+1, len(m), ErrCorrupt)
		}
		where := fmt.Sprintf("manifest.json: image %d", i+1)
		cb, err := tarFileBytes(archive, d.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", where, err)
		}
		cfg, err := parseConfig(cb, where+": config "+d.Config)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(cb)
		src := source{ref: ref, id: "sha256:" + hex.EncodeToString(sum[:]), config: cfg, diffIDs: cfg.RootFS.DiffIDs, location: where}
		for _, name := range d.Layers {
			src.layers = append(src.layers, func() (io.ReadCloser, error) { return openTarFile(archive, name) })
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// tarFileBytes reads one file of a tar archive into memory.
func tarFileBytes(archive, name string) ([]byte, error) {
	rc, err := openTarFile(archive, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readLimited(rc, name)
}

// openTarFile opens the file name inside the tar archive, following links inside the archive
// (docker save links a layer that two images share). Nothing outside the archive is read.
func openTarFile(archive, name string) (io.ReadCloser, error) {
	want := path.Clean(name)
	for hops := 0; hops < 8; hops++ {
		f, err := os.Open(archive)
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(f) // skips file bodies with Seek
		var link string
	scan:
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				f.Close()
				return nil, fmt.Errorf("%s: not in the archive: %w", name, ErrCorrupt)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %v: %w", name, err, ErrCorrupt)
			}
			if path.Clean(hdr.Name) != want {
				continue
			}
			switch hdr.Typeflag {
			case tar.TypeReg, tar.TypeRegA:
				return struct {
					io.Reader
					io.Closer
				}{tr, f}, nil
			case tar.TypeSymlink:
				link = path.Join(path.Dir(want), hdr.Linkname)
			case tar.TypeLink:
				link = path.Clean(hdr.Linkname)
			default:
				f.Close()
				return nil, fmt.Errorf("%s: not a regular file in the archive: %w", name, ErrCorrupt)
			}
			break scan
		}
		f.Close()
		want = strings.TrimPrefix(link, "/")
	}
	return nil, fmt.Errorf("%s: too many links: %w", name, ErrCorrupt)
}

// checkRepoTag checks a docker-save RepoTags entry, [REGISTRY/]REPOSITORY[:TAG], with the
// rules of go-containerregistry's name.NewTag that docker-save archives were read with: a tag
// of letters, digits, '_', '.' and '-' (at most 128), a repository of lowercase letters,
// digits, '_', '.', '-' and '/' (at most 255), a registry that is a host[:port].
func checkRepoTag(s string) error {
	base, tag := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		base, tag = s[:i], s[i+1:]
		if tag == "" {
			return errors.New("empty tag after ':'")
		}
	}
	if len(tag) > 128 || !onlyChars(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") {
		return fmt.Errorf("tag %q: at most 128 letters, digits, '_', '.', '-'", tag)
	}
	repo := base
	if reg, rest, ok := strings.Cut(base, "/"); ok && (reg == "localhost" || strings.ContainsAny(reg, ".:")) {
		if !validRegistry(reg) {
			return fmt.Errorf("registry %q: want HOST[:PORT]", reg)
		}
		repo = rest
	}
	if repo == "" || len(repo) > 255 || !onlyChars(repo, "abcdefghijklmnopqrstuvwxyz0123456789_.-/") {
		return fmt.Errorf("repository %q: 1 to 255 lowercase letters, digits, '_', '.', '-', '/'", repo)
	}
	return nil
}

func onlyChars(s, allowed string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			return false
		}
	}
	return true
}

// validRegistry accepts HOST[:PORT]: a DNS name or IPv4 address, or an IPv6 address in
// brackets.
func validRegistry(r string) bool {
	host, port := r, ""
	if strings.HasPrefix(r, "[") {
		end := strings.IndexByte(r, ']')
		if end < 0 || !onlyChars(r[1:end], "0123456789abcdefABCDEF:.") {
			return false
		}
		host, port = r[:end+1], strings.TrimPrefix(r[end+1:], ":")
		if port == "" && len(r) > end+1 {
			return false
		}
	} else if h, p, ok := strings.Cut(r, ":"); ok {
		host, port = h, p
		if port == "" {
			return false
		}
	}
	if !strings.HasPrefix(host, "[") && (host == "" || !onlyChars(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")) {
		return false
	}
	return onlyChars(port, "0123456789")
}

// openLayer opens a layer's uncompressed content, recognising gzip and zstd by their magic
// numbers whatever the media type says, as go-containerregistry did.
func openLayer(open layerOpener) (io.ReadCloser, error) {
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b, 0x08}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("gzip: %v: %w", err, ErrCorrupt)
		}
		return readCloser{zr, rc}, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return readCloser{newZstdReader(br), rc}, nil
	}
	return readCloser{br, rc}, nil
}

// readCloser reads from one reader and closes another (the file under a decompressor). A
// read error other than the end is the layer's corruption.
type readCloser struct {
	r io.Reader
	c io.Closer
}

func (r readCloser) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("layer: %w: %w", err, ErrCorrupt)
	}
	return n, err
}

func (r readCloser) Close() error { return r.c.Close() }
