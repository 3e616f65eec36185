package image

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidateName checks the names images are created under (commit, import, load --name):
// one plain path component of the documented alphabet, none of the image root's own
// directories, never an archive's name. The seeds run with the unit tests; `go test -fuzz
// FuzzValidateName ./container/image` explores further.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"busybox", "alpine-3.19", "a_b.c", "mnt", "writeLayer", "workLayer", "x.tar", "x.tar.gz", ".meta",
		".", "..", "../x", "a/b", "a:b", "a,b", "-x", "_x", strings.Repeat("a", 64), strings.Repeat("a", 65), "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "image name") {
				t.Fatalf("ValidateName(%q): unclear error %v", s, err)
			}
			return
		}
		if len(s) == 0 || len(s) > 64 || filepath.Base(s) != s || s == "." || s == ".." {
			t.Fatalf("ValidateName accepted %q", s)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
			if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
				t.Fatalf("ValidateName accepted %q with %q at %d", s, c, i)
			}
		}
		if s == "mnt" || s == "writeLayer" || s == "workLayer" || strings.HasSuffix(s, ".tar") {
			t.Fatalf("ValidateName accepted the reserved %q", s)
		}
	})
}
