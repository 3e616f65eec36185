// Package ident checks the names fockker turns into path components: container and image
// names.
package ident

// MaxLen is the longest name Valid accepts.
const MaxLen = 64

// Rule is Valid's rule, as error messages quote it.
const Rule = "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}"

// Valid reports whether s matches Rule: 1 to 64 bytes, an ASCII letter or digit first, then
// letters, digits, '_', '.' and '-'. Such a name is one plain path component ("." and ".."
// cannot match, nor a hidden name) and holds no separator of overlayfs options. Names with a
// meaning of their own (the state root's "network", the image root's "mnt"...) are the
// callers' to refuse.
//
// It is a loop rather than a regular expression so that no process pays for compiling one at
// start-up.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
