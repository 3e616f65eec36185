package network

import (
	"errors"
	"strings"
	"testing"
)

// Fuzz targets for what users type into -p, network create --subnet and network names. They
// run their seed corpus as plain unit tests without root; `go test -fuzz FuzzParsePortMapping
// ./network` explores further. Each checks what an accepted value means, not only that
// nothing panics.

func FuzzParsePortMapping(f *testing.F) {
	for _, s := range []string{
		"8080:80", "5353:53/udp", "1:1/TCP", "0:80", "80:0", "65535:65535", "65536:80", "80:65536",
		"-1:80", "+1:80", "80", "80:", ":80", "a:80", "80:80/sctp", "80:80/", "8080:80:1",
		"080:80", "00000000000000000080:80", "1.2.3.4:80:80", " 80:80", "80:80/tcp/udp", "٨٠:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortMapping(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPort) || !strings.Contains(err.Error(), "port") {
				t.Fatalf("ParsePortMapping(%q): unclear error %v", s, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePortMapping(%q) = %+v, which Validate refuses: %v", s, p, err)
		}
		// What the record stores (String) parses back to the same mapping.
		q, err := ParsePortMapping(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePortMapping(%q) = %+v; %q parses to %+v, %v", s, p, p.String(), q, err)
		}
		if _, err := ParsePortMappings([]string{s, p.String()}); err == nil {
			t.Fatalf("ParsePortMappings accepted %q twice", s)
		}
	})
}

func FuzzParseSubnet(f *testing.F) {
	for _, s := range []string{
		"10.10.0.0/24", "10.10.0.1/24", "192.168.0.0/16", "10.0.0.0/30", "10.0.0.0/31", "10.0.0.0/32",
		"0.0.0.0/0", "::/64", "fd00::/64", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1",
		"010.0.0.0/8", "10.0.0.0/08", " 10.0.0.0/8", "::ffff:10.0.0.0/104", "10.0.0.0/8%eth0",
		"224.0.0.0/4", "127.0.0.0/8", "255.255.255.252/30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSubnet(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubnet) {
				t.Fatalf("ParseSubnet(%q): error %v does not wrap ErrInvalidSubnet", s, err)
			}
			return
		}
		if !p.Addr().Is4() || p.Masked() != p || p.Bits() > 30 {
			t.Fatalf("ParseSubnet(%q) = %s: not a canonical IPv4 subnet of 4 addresses or more", s, p)
		}
		if q, err := ParseSubnet(p.String()); err != nil || q != p {
			t.Fatalf("ParseSubnet(%q) = %s; %q parses to %s, %v", s, p, p.String(), q, err)
		}
		if gw := p.Addr().Next(); !p.Contains(gw) {
			t.Fatalf("ParseSubnet(%q) = %s: gateway %s outside", s, p, gw)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"fockker0", "net-1", "a.b_c", "none", "host", "", ".", "..", "a/b", "a b", "a:b", "a\n",
		"abcdefghijklmno", "abcdefghijklmnop", "-a", "_a", "eth0@x", "é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ValidateName(%q): error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		// It names a bridge: what the kernel's dev_valid_name accepts, and a directory.
		if len(s) == 0 || len(s) > 15 || s == "." || s == ".." || s == NoneName || s == HostName {
			t.Fatalf("ValidateName accepted %q", s)
		}
		for _, c := range []byte(s) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
			if !ok {
				t.Fatalf("ValidateName accepted %q with byte %q", s, c)
			}
		}
		if c := s[0]; c == '.' || c == '-' || c == '_' {
			t.Fatalf("ValidateName accepted %q starting with %q", s, c)
		}
	})
}
