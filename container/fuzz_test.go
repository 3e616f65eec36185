package container

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for the parsers a user string goes through before it touches a path. They run
// their seed corpus as plain unit tests (no root needed); `go test -fuzz FuzzParseVolume
// ./container` explores further. Each checks properties of what is accepted, not only that
// nothing panics.

func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{
		"/a:/b", "/a:/b:ro", "/a:/b:rw", "/a:/b:rx", "/a/../b:/c/./d/", "/:/x", "/x:/", "/x:/..",
		"rel:/x", "/x:rel", "/x", "/x:/y:ro:extra", "", ":", "::", "/a\x00b:/c", "/a:/b\x00",
		"/a:/b\n", "//a//:/b//", "/a:/.", "/a:/b/../..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVolume(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidVolume) {
				t.Fatalf("ParseVolume(%q): error %v does not wrap ErrInvalidVolume", s, err)
			}
			if !strings.Contains(err.Error(), "volume") {
				t.Fatalf("ParseVolume(%q): message %q does not say what was wrong", s, err)
			}
			return
		}
		for what, p := range map[string]string{"host": v.Host, "target": v.Target} {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p {
				t.Fatalf("ParseVolume(%q): %s path %q is not absolute and clean", s, what, p)
			}
			if strings.ContainsAny(p, "\x00:") {
				t.Fatalf("ParseVolume(%q): %s path %q holds a NUL or ':'", s, what, p)
			}
		}
		if v.Target == "/" {
			t.Fatalf("ParseVolume(%q): accepted a mount over the root", s)
		}
		// What the record stores (String) parses back to the same volume.
		w, err := ParseVolume(v.String())
		if err != nil || w != v {
			t.Fatalf("ParseVolume(%q) = %+v; its String %q parses to %+v, %v", s, v, v.String(), w, err)
		}
	})
}

// FuzzParseVolumeAccepts checks the other direction: two absolute paths without ':' or NUL
// always make a volume (unless the target is the root).
func FuzzParseVolumeAccepts(f *testing.F) {
	f.Add("a", "b", false)
	f.Add("..", "x/../y", true)
	f.Add("", "x", false)
	f.Fuzz(func(t *testing.T, host, target string, ro bool) {
		if strings.ContainsAny(host+target, ":\x00") {
			return
		}
		s := "/" + host + ":/" + target
		if ro {
			s += ":ro"
		}
		v, err := ParseVolume(s)
		if filepath.Clean("/"+target) == "/" {
			if err == nil {
				t.Fatalf("ParseVolume(%q) accepted a mount over the root: %+v", s, v)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseVolume(%q): %v", s, err)
		}
		if v.Host != filepath.Clean("/"+host) || v.Target != filepath.Clean("/"+target) || v.ReadOnly != ro {
			t.Fatalf("ParseVolume(%q) = %+v", s, v)
		}
	})
}

// validNameRef is the documented rule, written out by hand: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}.
func validNameRef(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return false
		}
	}
	return true
}

// FuzzValidateName covers container and image names: they become directory names under the
// state and image roots, cgroup names and overlay options.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"a", "box-1", "a.b_c", ".", "..", "../x", "a/b", "a,b", "a:b", "_x", "-x", "a\n", "a\x00",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "network", "é", "a b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []string{"container", "image"} {
			err := ValidateName(kind, s)
			if (err == nil) != validNameRef(s) {
				t.Fatalf("ValidateName(%s, %q) = %v, the documented rule says %v", kind, s, err, validNameRef(s))
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), kind+" name") {
					t.Fatalf("ValidateName(%s, %q): unclear error %v", kind, s, err)
				}
				continue
			}
			// An accepted name is one path component that stays where it is put, and is
			// harmless in overlayfs options.
			if filepath.Base(s) != s || filepath.Clean(s) != s || s == "." || s == ".." {
				t.Fatalf("ValidateName accepted %q, which is not a plain path component", s)
			}
			if strings.ContainsAny(s, ",:=/\\ \t\n\x00") {
				t.Fatalf("ValidateName accepted %q with a separator", s)
			}
		}
	})
}
