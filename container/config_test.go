package container

import (
	"errors"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"testContainer", true}, {"a", true}, {"0", true}, {"a_b.c-d", true},
		{"", false}, {"../x", false}, {"a,b", false}, {"a/b", false}, {".hidden", false},
		{"-x", false}, {"a b", false}, {"名字", false}, {"a\x00b", false},
		{string(make64('a')), true}, {string(make64('a')) + "a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName("container", tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestParseVolume(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Volume
		err  bool
	}{
		{in: "/test:/test", want: Volume{Host: "/test", Target: "/test"}},
		{in: "/a/../b:/c/./d:ro", want: Volume{Host: "/b", Target: "/c/d", ReadOnly: true}},
		{in: "/a:/b:rw", want: Volume{Host: "/a", Target: "/b"}},
		{in: "/a:b", err: true},
		{in: "a:/b", err: true},
		{in: "/a", err: true},
		{in: "/a:/b:rx", err: true},
		{in: "/a:/b:ro:x", err: true},
		{in: "/a:/", err: true},
		{in: "/a:/..", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			v, err := ParseVolume(tc.in)
			if tc.err {
				if !errors.Is(err, ErrInvalidVolume) {
					t.Fatalf("ParseVolume(%q) = %+v, %v; want ErrInvalidVolume", tc.in, v, err)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("ParseVolume(%q) = %+v, %v; want %+v", tc.in, v, err, tc.want)
			}
		})
	}
}

func TestRootsValidate(t *testing.T) {
	for _, tc := range []struct {
		r  Roots
		ok bool
	}{
		{Roots{State: "/var/run/fockker", Image: "/var/root"}, true},
		{Roots{State: "run", Image: "/var/root"}, false},
		{Roots{State: "/run", Image: ""}, false},
		{Roots{State: "/run", Image: "/a,b"}, false},
		{Roots{State: "/run", Image: "/a:b"}, false},
	} {
		if err := tc.r.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.r, err, tc.ok)
		}
	}
}

func TestParseStartTime(t *testing.T) {
	// comm may contain spaces and ')': fields are counted after the last ')'.
	line := "1234 (we ird) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	st, err := parseStartTime([]byte(line))
	if err != nil || st != 987654 {
		t.Fatalf("parseStartTime = %d, %v; want 987654", st, err)
	}
	for _, bad := range []string{"", "1234 (x S 1", "1234 (x) S 1 2 3"} {
		if _, err := parseStartTime([]byte(bad)); err == nil {
			t.Errorf("parseStartTime(%q): want an error", bad)
		}
	}
}
