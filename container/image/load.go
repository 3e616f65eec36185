package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Archive formats Load understands.
const (
	FormatDockerArchive = "docker-archive" // `docker save` / `podman save`: manifest.json
	FormatOCIArchive    = "oci-archive"    // an OCI image layout in a tar: oci-layout, index.json
	FormatOCILayout     = "oci-layout"     // an OCI image layout directory
)

// Annotations that name an image in an OCI layout's index.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// LoadOptions control Load.
type LoadOptions struct {
	// Name names the image; only for an archive holding one. By default an image is named
	// after its repository (docker.io/library/alpine:3.19 is alpine), or after the archive
	// file when the archive does not name it.
	Name  string
	Force bool // replace images of the same names (never one a container uses)
	// Progress receives a progress line, rewritten in place, while layers are applied; nil
	// for none.
	Progress io.Writer
}

// Load installs the images of an OCI image layout (a tar or a directory) or of a docker-save
// archive, each as a directory in the image root: its layers applied in order, whiteouts
// honoured (see ApplyLayer), each layer checked against the config's diff ID, and its config
// (Env, Entrypoint, Cmd, WorkingDir, User) kept in its record. It is all or nothing: on any
// failure no image is added or changed and no temporary file is left.
func (s *Store) Load(path string, opts LoadOptions) ([]*Meta, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var format string
	var srcs []source
	if fi.IsDir() {
		format = FormatOCILayout
		srcs, err = ociImages(abs)
	} else {
		var stage string
		format, srcs, stage, err = s.archiveImages(abs)
		if stage != "" {
			defer os.RemoveAll(stage)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("load %s: no image in the archive: %w", path, ErrCorrupt)
	}
	names, err := imageNames(srcs, abs, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	for _, n := range names {
		if err := s.checkNew(n, opts.Force); err != nil { // early; install checks again, locked
			return nil, err
		}
	}
	var stages []staged
	defer func() {
		for _, st := range stages {
			os.RemoveAll(st.path) // gone once installed; what a failure left otherwise
		}
	}()
	for i, src := range srcs {
		st, err := s.stage(src, names[i], opts.Progress)
		if st.path != "" {
			stages = append(stages, st)
		}
		if err != nil {
			return nil, fmt.Errorf("load %s: image %s: %w", path, names[i], err)
		}
		st.meta.Source = fmt.Sprintf("load %s %s", format, abs)
		stages[len(stages)-1] = st
	}
	if err := s.install(stages, opts.Force); err != nil {
		return nil, err
	}
	metas := make([]*Meta, len(stages))
	for i := range stages {
		metas[i] = &stages[i].meta
	}
	return metas, nil
}

// archiveImages recognises an archive by its top-level files and returns its images, and a
// temporary directory for the caller to remove once they are read ("" when there is none).
func (s *Store) archiveImages(path string) (string, []source, string, error) {
	top, err := topLevelNames(path)
	if err != nil {
		return "", nil, "", err
	}
	switch {
	case top["manifest.json"]:
		// docker save (and podman save) archives; docker 25+ adds an OCI layout beside
		// manifest.json, which names the same blobs.
		srcs, err := dockerImages(path)
		return FormatDockerArchive, srcs, "", err
	case top["index.json"] && top["oci-layout"]:
		// Blobs are read from a directory: unpack it first, refusing links that could make
		// a "blob" of a host file.
		dir, err := s.stageDir("layout")
		if err != nil {
			return "", nil, "", err
		}
		f, err := os.Open(path)
		if err != nil {
			return "", nil, dir, err
		}
		defer f.Close()
		x := &extractor{dir: dir, written: map[string]bool{}, plainOnly: true}
		if err := x.run(f); err != nil {
			return "", nil, dir, err
		}
		srcs, err := ociImages(dir)
		return FormatOCIArchive, srcs, dir, err
	}
	return "", nil, "", fmt.Errorf("neither manifest.json (docker save) nor index.json and oci-layout (OCI image layout) at the top: %w", ErrUnknownFormat)
}

// topLevelNames lists the files at the top of a tar, reading headers only.
func topLevelNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f) // skips file bodies with Seek
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %v: %w", err, ErrUnknownFormat)
		}
		if n := filepath.Clean(hdr.Name); !strings.Contains(n, "/") {
			names[n] = true
		}
	}
}

// imageNames names the images to be loaded: --name for a single image, else each image's
// repository, else the archive's file name.
func imageNames(srcs []source, path, override string) ([]string, error) {
	if override != "" {
		if len(srcs) != 1 {
			return nil, fmt.Errorf("--name: the archive holds %d images; name them by their tags instead", len(srcs))
		}
		return []string{override}, ValidateName(override)
	}
	seen := map[string]bool{}
	names := make([]string, len(srcs))
	for i, src := range srcs {
		n := repositoryName(src.ref)
		if n == "" {
			if len(srcs) != 1 {
				return nil, fmt.Errorf("image %d of %d is not named in the archive", i+1, len(srcs))
			}
			n = strings.TrimSuffix(filepath.Base(path), ".tar")
		}
		if err := ValidateName(n); err != nil {
			return nil, fmt.Errorf("%w (choose a name with --name)", err)
		}
		if seen[n] {
			return nil, fmt.Errorf("two images would be named %q: load them one by one with --name", n)
		}
		seen[n] = true
		names[i] = n
	}
	return names, nil
}

// repositoryName is the last path component of a reference's repository:
// registry:5000/library/alpine:3.19@sha256:... is alpine.
func repositoryName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref[strings.LastIndex(ref, "/")+1:]
}

// stage applies an image's layers into a new temporary directory of the image root and
// returns it with the image's record. The directory is returned (for removal) even on error.
func (s *Store) stage(src source, name string, progress io.Writer) (staged, error) {
	st := staged{form: FormDir}
	cf := src.config
	if len(src.diffIDs) != len(src.layers) {
		return st, fmt.Errorf("%s: %d layers but %d diff IDs in the config: %w", src.location, len(src.layers), len(src.diffIDs), ErrCorrupt)
	}
	var err error
	if st.path, err = s.stageDir("load-" + name); err != nil {
		return st, err
	}
	p := &meter{w: progress, name: name, layers: len(src.layers)}
	for i, l := range src.layers {
		p.layer = i + 1
		if err := applyChecked(l, src.diffIDs[i], st.path, p); err != nil {
			p.end()
			return st, fmt.Errorf("layer %d of %d: %w", i+1, len(src.layers), err)
		}
	}
	p.end()
	size, err := dirSize(st.path)
	if err != nil {
		return st, err
	}
	created := time.Now()
	if cf.Created != nil && !cf.Created.IsZero() {
		created = *cf.Created
	}
	st.meta = Meta{
		Name: name, Created: created.UTC(), Size: size, Ref: src.ref, ID: src.id,
		Config: Config{
			Env:        cf.Config.Env,
			Entrypoint: cf.Config.Entrypoint,
			Cmd:        cf.Config.Cmd,
			WorkingDir: cf.Config.WorkingDir,
			User:       cf.Config.User,
		},
	}
	return st, nil
}

// applyChecked applies one layer and checks that its uncompressed content is the one the
// config's diff ID names.
func applyChecked(open layerOpener, diffID, dir string, p *meter) error {
	alg, want, err := parseDigest(diffID)
	if err != nil {
		return fmt.Errorf("diff ID: %w", err)
	}
	if alg != "sha256" {
		return fmt.Errorf("diff ID %s: only sha256 is supported: %w", diffID, ErrCorrupt)
	}
	rc, err := openLayer(open)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(&meterReader{r: rc, m: p}, h)
	if err := ApplyLayer(r, dir); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // the tar's padding, all of it hashed
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("content is sha256:%s, the config says %s: %w", got, diffID, ErrCorrupt)
	}
	return nil
}

// meter shows a load's progress on one line, rewritten at most ten times a second.
type meter struct {
	w             io.Writer
	name          string
	layer, layers int
	bytes         int64
	last          time.Time
}

func (m *meter) add(n int) {
	m.bytes += int64(n)
	if m.w == nil || time.Since(m.last) < 100*time.Millisecond {
		return
	}
	m.last = time.Now()
	m.show()
}

func (m *meter) show() {
	fmt.Fprintf(m.w, "\rLoading %s: layer %d/%d, %s ", m.name, m.layer, m.layers, HumanSize(m.bytes))
}

// end finishes the progress line.
func (m *meter) end() {
	if m.w == nil {
		return
	}
	m.show()
	fmt.Fprintln(m.w)
}

type meterReader struct {
	r io.Reader
	m *meter
}

func (r *meterReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.m.add(n)
	return n, err
}

// HumanSize renders a byte count the way `docker images` does (decimal units).
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}
