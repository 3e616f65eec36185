package ident

import (
	"regexp"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"a", true}, {"box-1", true}, {"a.b_c", true}, {"A9", true}, {"9", true},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
		{"", false}, {".", false}, {"..", false}, {"../x", false}, {"a/b", false}, {"a,b", false},
		{"a:b", false}, {"_x", false}, {"-x", false}, {".x", false}, {"a\n", false}, {"a\x00", false},
		{"é", false}, {"aé", false}, {"a b", false},
	} {
		if got := Valid(tc.name); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzValid checks the loop against the regular expression it replaces.
func FuzzValid(f *testing.F) {
	re := regexp.MustCompile(`^` + Rule + `$`)
	for _, s := range []string{"a", "a-b", "", "a\n", strings.Repeat("x", 64), strings.Repeat("x", 65), "-", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid(s), re.MatchString(s); got != want {
			t.Fatalf("Valid(%q) = %v, the expression says %v", s, got, want)
		}
	})
}
