package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a`:             "/a",
		`/a\040b`:        "/a b",
		`/a\011\012\134`: "/a\t\n\\",
		`/a\09`:          `/a\09`,
		`/a\`:            `/a\`,
		`/a\040`:         "/a ",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
