package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/FishingRodd/fockker/container"
)

// Fuzz targets for what run's -e/--env-file and --hostname accept. They run their seed corpus
// as plain unit tests without root; `go test -fuzz FuzzEnvEntry .` explores further.

func FuzzEnvEntry(f *testing.F) {
	for _, s := range []string{
		"A=1", "A=", "A=b=c", "=1", "", "A B=1", "A\tB=1", "A\nB=1", "A\x00=1", "A=\x00", "A=line\nnext",
		"PATH", "FOCKKER_FUZZ_UNSET", "Ä=1", "A\x7f=1", "=", "==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, ok, err := envEntry(s)
		if err != nil {
			if !errors.Is(err, container.ErrInvalidEnv) || !strings.Contains(err.Error(), "KEY=VALUE") {
				t.Fatalf("envEntry(%q): unclear error %v", s, err)
			}
			return
		}
		if !ok {
			// Only "-e KEY" for a KEY the host does not have is dropped.
			if strings.Contains(s, "=") {
				t.Fatalf("envEntry(%q) dropped a KEY=VALUE", s)
			}
			return
		}
		k, v, found := strings.Cut(kv, "=")
		if !found || k == "" || strings.ContainsRune(kv, 0) {
			t.Fatalf("envEntry(%q) = %q: not a KEY=VALUE execve can pass", s, kv)
		}
		for _, c := range k {
			if c <= ' ' || c == 0x7f {
				t.Fatalf("envEntry(%q) = %q: key with a space or control character", s, kv)
			}
		}
		if strings.Contains(s, "=") && kv != s {
			t.Fatalf("envEntry(%q) = %q: KEY=VALUE changed", s, kv)
		}
		if !strings.Contains(s, "=") && (k != s) {
			t.Fatalf("envEntry(%q) = %q: the host's variable under another name", s, kv)
		}
		// What it returns is accepted as it is.
		if kv2, ok2, err := envEntry(kv); err != nil || !ok2 || kv2 != kv {
			t.Fatalf("envEntry(%q) = %q, which gives %q, %v, %v", s, kv, kv2, ok2, err)
		}
		_ = v
	})
}

func FuzzValidHostname(f *testing.F) {
	for _, s := range []string{"box", "a.b-c", "", "-a", "a-", "a..b", "a_b", "a.", ".a", strings.Repeat("a", 64), strings.Repeat("a", 65), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validHostname(s) {
			return
		}
		// sethostname(2) takes at most 64 bytes; labels are RFC 1123's.
		if len(s) == 0 || len(s) > 64 {
			t.Fatalf("validHostname accepted %q (%d bytes)", s, len(s))
		}
		for _, label := range strings.Split(s, ".") {
			if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
				t.Fatalf("validHostname accepted %q with label %q", s, label)
			}
			if strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
				t.Fatalf("validHostname accepted %q with label %q", s, label)
			}
		}
	})
}
