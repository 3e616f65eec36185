package cgroup

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for the limit parsers (-m, --cpus, --cpuset). They run their seed corpus as
// plain unit tests without root; `go test -fuzz FuzzParseMemory ./container/cgroup` explores
// further. Each checks what an accepted value means, not only that nothing panics.

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{
		"6m", "6291455", "6291456", "100m", "1g", "1.5g", "512MB", "1GiB", "1iB", "1b", "0", "-1",
		"10x", "1e9", " 1g", "1g ", "+1g", "0x10", "9223372036854775807", "9223372036854775808",
		"8388608t", "8388607.9999t", ".5g", "1.g", "1..5g", "1,5g", "１g", "6M", "6Mib",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMemory(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), "memory") {
				t.Fatalf("ParseMemory(%q): unclear error %v", s, err)
			}
			return
		}
		if v < MinMemory {
			t.Fatalf("ParseMemory(%q) = %d, below the minimum %d", s, v, MinMemory)
		}
		if err := (Limits{Memory: v}).Validate(); err != nil {
			t.Fatalf("ParseMemory(%q) = %d, which Validate refuses: %v", s, v, err)
		}
		// The value in bytes parses to itself, and case does not matter.
		if w, err := ParseMemory(strconv.FormatInt(v, 10)); err != nil || w != v {
			t.Fatalf("ParseMemory(%q) = %d, but %d parses to %d, %v", s, v, v, w, err)
		}
		if w, err := ParseMemory(strings.ToUpper(s)); err != nil || w != v {
			t.Fatalf("ParseMemory(%q) = %d, but its upper case gives %d, %v", s, v, w, err)
		}
		// Only digits, one dot and a unit: nothing a shell or the kernel would read otherwise.
		if strings.Trim(strings.ToLower(s), "0123456789.kmgtib") != "" {
			t.Fatalf("ParseMemory accepted %q, which has other characters", s)
		}
		// The exact value: the number times the unit, rounded down.
		num := strings.ToLower(s)
		num = strings.TrimSuffix(strings.TrimSuffix(num, "ib"), "b")
		mult := int64(1)
		if i := strings.IndexByte("kmgt", num[len(num)-1]); i >= 0 {
			mult, num = 1<<(10*(i+1)), num[:len(num)-1]
		}
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			t.Fatalf("ParseMemory accepted %q, whose number %q is not one", s, num)
		}
		r.Mul(r, new(big.Rat).SetInt64(mult))
		if want := new(big.Int).Quo(r.Num(), r.Denom()); !want.IsInt64() || want.Int64() != v {
			t.Fatalf("ParseMemory(%q) = %d, want %s", s, v, want)
		}
	})
}

func FuzzParseCPUs(f *testing.F) {
	for _, s := range []string{
		"0.5", "1", "2", "0.01", "0.009", "0.00999", ".5", "1.", "0", "-1", "abc", "1e1", " 1", "1.25",
		"3", "64", "0.0100000000000000001", "1/2", "0x1", "00.5",
	} {
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		ncpu := int(n%128) + 1
		q, p, err := parseCPUs(s, ncpu)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), "cpus") {
				t.Fatalf("parseCPUs(%q, %d): unclear error %v", s, ncpu, err)
			}
			return
		}
		if p != DefaultCPUPeriod {
			t.Fatalf("parseCPUs(%q) period %d", s, p)
		}
		if q < MinCPUQuota || q > int64(ncpu)*DefaultCPUPeriod {
			t.Fatalf("parseCPUs(%q, %d) quota %d outside [%d, %d]", s, ncpu, q, MinCPUQuota, ncpu*DefaultCPUPeriod)
		}
		if err := (Limits{CPUQuota: q, CPUPeriod: p}).Validate(); err != nil {
			t.Fatalf("parseCPUs(%q) = %d/%d, which Validate refuses: %v", s, q, p, err)
		}
		// The quota written back as CPUs parses to the same quota.
		back := new(big.Rat).SetFrac64(q, DefaultCPUPeriod).FloatString(5)
		if q2, _, err := parseCPUs(back, ncpu); err != nil || q2 != q {
			t.Fatalf("parseCPUs(%q) = %d; %q gives %d, %v", s, q, back, q2, err)
		}
	})
}

func FuzzValidateCpuset(f *testing.F) {
	for _, s := range []string{
		"0", "0-1", "0,2-3", "1-0", "", ",", "0,", "-1", "0--1", "a", "0 ", "0\n", "65535", "65536",
		"0-65535", "00", "1,1", "0-0", "+1", "0x1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateCpuset(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), "cpuset") {
				t.Fatalf("ValidateCpuset(%q): unclear error %v", s, err)
			}
			return
		}
		// Only what cpuset.cpus understands, nothing a write could smuggle in.
		if s == "" || strings.Trim(s, "0123456789,-") != "" {
			t.Fatalf("ValidateCpuset accepted %q", s)
		}
		rs, err := parseCPUList(s)
		if err != nil {
			t.Fatalf("ValidateCpuset(%q) ok but parseCPUList fails: %v", s, err)
		}
		for _, r := range rs {
			if r.lo < 0 || r.lo > r.hi || r.hi > maxCPUID {
				t.Fatalf("ValidateCpuset(%q): range %+v", s, r)
			}
		}
		if err := (Limits{Cpuset: s}).Validate(); err != nil {
			t.Fatalf("ValidateCpuset(%q) ok but Validate refuses: %v", s, err)
		}
		// A list is online when it is the online list itself.
		if err := checkCPUsOnline(s, s+"\n"); err != nil {
			t.Fatalf("checkCPUsOnline(%q, itself): %v", s, err)
		}
	})
}
