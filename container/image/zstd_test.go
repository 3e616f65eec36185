package image

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestXXH64(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 100)
	for _, tc := range []struct {
		in   []byte
		want uint64
	}{
		{nil, 0xEF46DB3751D8E999},
		{[]byte("a"), 0xD24EC4F1A98C6E5B},
		{[]byte("abc"), 0x44BC2CF5AD770999},
	} {
		var x xxh64
		x.reset()
		x.write(tc.in)
		if got := x.sum(); got != tc.want {
			t.Errorf("xxh64(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	// Written in pieces of every size, the sum is the same.
	var whole xxh64
	whole.reset()
	whole.write(long)
	for step := 1; step < 70; step++ {
		var x xxh64
		x.reset()
		for b := long; len(b) > 0; {
			n := min(step, len(b))
			x.write(b[:n])
			b = b[n:]
		}
		if x.sum() != whole.sum() {
			t.Fatalf("pieces of %d: %#x, whole: %#x", step, x.sum(), whole.sum())
		}
	}
}

// zstdInputs are contents of the kinds layers hold: text, binaries, runs, random bytes.
func zstdInputs(t *testing.T) map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var text bytes.Buffer
	words := strings.Fields("the quick brown fox jumps over the lazy dog container image layer overlay cgroup namespace")
	for text.Len() < 1<<20 {
		fmt.Fprintf(&text, "%s %d %s\n", words[r.IntN(len(words))], r.IntN(1000), words[r.IntN(len(words))])
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"empty":  {},
		"one":    {'x'},
		"small":  []byte("hello, hello, hello world\n"),
		"zeros":  make([]byte, 1<<20),
		"random": random,
		"text":   text.Bytes(),
		"binary": self[:min(len(self), 3<<20)],
		"mixed":  append(append(append([]byte{}, text.Bytes()[:200<<10]...), random[:100<<10]...), make([]byte, 200<<10)...),
	}
}

func unzstd(t *testing.T, compressed []byte) ([]byte, error) {
	t.Helper()
	return io.ReadAll(newZstdReader(bytes.NewReader(compressed)))
}

// TestZstdAgainstReference decompresses what the reference implementation's command line
// tool writes, with the options that change the stream's structure.
func TestZstdAgainstReference(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("the zstd command is not installed")
	}
	dir := t.TempDir()
	for name, data := range zstdInputs(t) {
		in := filepath.Join(dir, name)
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opts := range [][]string{
			{"-1"}, {"-3"}, {"-9"}, {"-19"}, {"--ultra", "-22"}, {"--fast=5"}, {"-3", "--no-check"},
			{"-3", "--no-content-size"}, {"--long=24", "-6"}, {"-12", "--single-thread", "-B128KiB"},
		} {
			if (opts[0] == "-19" || opts[0] == "--ultra") && len(data) > 512<<10 {
				continue // slow to compress; the smaller inputs cover these levels
			}
			t.Run(name+strings.Join(opts, ""), func(t *testing.T) {
				out, err := exec.Command(bin, append([]string{"-q", "-c"}, append(opts, in)...)...).Output()
				if err != nil {
					t.Fatal(err)
				}
				got, err := unzstd(t, out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decoded %d bytes, want %d (%x vs %x)", len(got), len(data), sha256.Sum256(got), sha256.Sum256(data))
				}
			})
		}
	}
}

// TestZstdFrames: concatenated frames, skippable frames between them, and what is refused.
func TestZstdFrames(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("the zstd command is not installed")
	}
	compress := func(b []byte) []byte {
		cmd := exec.Command(bin, "-q", "-c", "-5")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := []byte(strings.Repeat("first frame ", 1000)), []byte(strings.Repeat("second ", 3000))
	skippable := []byte{0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'x', 'y', 'z'}
	stream := append(append(append(compress(a), skippable...), compress(b)...), skippable...)
	got, err := unzstd(t, stream)
	if err != nil || !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}

	good := compress(a)
	flip := append([]byte{}, good...)
	flip[len(flip)/2] ^= 0x55
	badSum := append([]byte{}, good...)
	badSum[len(badSum)-1] ^= 1
	for name, in := range map[string][]byte{
		"truncated":      good[:len(good)-5],
		"corrupted":      flip,
		"wrong checksum": badSum,
		"bad magic":      append([]byte{1, 2, 3, 4}, good[4:]...),
		"trailing bytes": append(append([]byte{}, good...), 1, 2),
		"dictionary":     {0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x58, 0x07, 0x01, 0, 0, 0},
	} {
		if _, err := unzstd(t, in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestZstdFixtures decompresses streams written by the encoders images are made with: the
// Go encoder of klauspost/compress v1.19.2 (what podman and containers/storage use; levels
// fastest to best, with and without checksums, and its streaming writer with a 64 KiB
// window), and the reference zstd 1.5.4. The contents are 48 KiB of text and 200 KiB of
// text, random bytes and zeros.
func TestZstdFixtures(t *testing.T) {
	const text = "7654eae6c0517276ecda7ef2b1813e65371cd863e33a02d038703d4909cbe220"
	const mixed = "d1794fa94782aa894b8100c2fed40d04902fcf3a2f3a689fba314e41a525f7a8"
	for name, want := range map[string]string{
		"klauspost-mixed-best.zst":          mixed,
		"klauspost-mixed-default-nocrc.zst": mixed,
		"klauspost-mixed-stream.zst":        mixed,
		"klauspost-small-default.zst":       "57f76b8873427c0bb0788f5264596551765a7f718af05982b33db1c0392a3490",
		"klauspost-text-best.zst":           text,
		"klauspost-text-default.zst":        text,
		"klauspost-text-fastest.zst":        text,
		"zstd-mixed-3-nocheck.zst":          mixed,
		"zstd-text-19.zst":                  text,
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "zstd", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := unzstd(t, b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(got)); sum != want {
			t.Errorf("%s: decoded %d bytes with sha256 %s, want %s", name, len(got), sum, want)
		}
		// Any cut is an error, never a shorter result.
		for _, cut := range []int{1, len(b) / 3, len(b) - 1} {
			if _, err := unzstd(t, b[:cut]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s cut at %d: %v, want ErrCorrupt", name, cut, err)
			}
		}
	}
}

// FuzzZstd: whatever the input, the decoder returns (data or an error) without panicking
// and without producing more than a frame's window allows per block.
func FuzzZstd(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "zstd", "*.zst"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 16<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = io.Copy(io.Discard, io.LimitReader(newZstdReader(bytes.NewReader(b)), 64<<20))
	})
}
