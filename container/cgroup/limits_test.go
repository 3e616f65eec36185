package cgroup

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseMemory(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		in      string
		want    int64
		wantErr string // substring; "" means success
	}{
		{in: "100m", want: 100 * mi},
		{in: "100M", want: 100 * mi},
		{in: "100mb", want: 100 * mi},
		{in: "100MiB", want: 100 * mi},
		{in: "1g", want: 1 << 30},
		{in: "1GB", want: 1 << 30},
		{in: "1.5g", want: 3 << 29},
		{in: "0.5g", want: 1 << 29},
		{in: "8192k", want: 8 * mi},
		{in: "6m", want: MinMemory},
		{in: "6291456", want: MinMemory},
		{in: "6291456b", want: MinMemory},
		{in: "1t", want: 1 << 40},
		{in: "10.0000001m", want: 10*mi + 0}, // 0.1048576 bytes rounded down
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "", wantErr: "empty"},
		{in: "-1", wantErr: "want a number"},
		{in: "-100m", wantErr: "want a number"},
		{in: "+100m", wantErr: "want a number"},
		{in: "abc", wantErr: "want a number"},
		{in: "m", wantErr: "want a number"},
		{in: "100x", wantErr: "want a number"},
		{in: "100 m", wantErr: "want a number"},
		{in: " 100m", wantErr: "want a number"},
		{in: "1e9", wantErr: "want a number"},
		{in: "1.m", wantErr: "want a number"},
		{in: ".5g", wantErr: "want a number"},
		{in: "1,5g", wantErr: "want a number"},
		{in: "100ib", wantErr: `"ib" needs a unit`},
		{in: "100mm", wantErr: "want a number"},
		{in: "0", wantErr: "minimum"},
		{in: "0m", wantErr: "minimum"},
		{in: "512k", wantErr: "minimum"},
		{in: "1048576", wantErr: "minimum"},
		{in: "5.99m", wantErr: "minimum"},
		{in: "9223372036854775808", wantErr: "too large"},
		{in: "8388608t", wantErr: "too large"},
		{in: "99999999999999999999999g", wantErr: "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMemory(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMemory(%q) = %d, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMemory(%q) error %q, want ErrInvalidLimit containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMemory(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseCPUs(t *testing.T) {
	tests := []struct {
		in      string
		ncpu    int
		quota   int64
		wantErr string
	}{
		{in: "0.5", ncpu: 2, quota: 50000},
		{in: ".5", ncpu: 2, quota: 50000},
		{in: "1", ncpu: 2, quota: 100000},
		{in: "2", ncpu: 2, quota: 200000},
		{in: "2.0", ncpu: 2, quota: 200000},
		{in: "1.25", ncpu: 4, quota: 125000},
		{in: "0.01", ncpu: 1, quota: 1000},
		{in: "0.333333", ncpu: 1, quota: 33333}, // sub-µs digits dropped
		{in: "0", ncpu: 2, wantErr: "greater than 0"},
		{in: "0.0", ncpu: 2, wantErr: "greater than 0"},
		{in: "-1", ncpu: 2, wantErr: "positive decimal"},
		{in: "2.5", ncpu: 2, wantErr: "only 2 CPUs"},
		{in: "3", ncpu: 2, wantErr: "only 2 CPUs"},
		{in: "0.009", ncpu: 2, wantErr: "minimum is 0.01"},
		{in: "", ncpu: 2, wantErr: "positive decimal"},
		{in: "abc", ncpu: 2, wantErr: "positive decimal"},
		{in: "1/2", ncpu: 2, wantErr: "positive decimal"},
		{in: "1e-1", ncpu: 2, wantErr: "positive decimal"},
		{in: "0x1", ncpu: 2, wantErr: "positive decimal"},
		{in: "1.", ncpu: 2, wantErr: "positive decimal"},
		{in: ".", ncpu: 2, wantErr: "positive decimal"},
		{in: "NaN", ncpu: 2, wantErr: "positive decimal"},
		{in: " 1", ncpu: 2, wantErr: "positive decimal"},
		{in: "99999999999999999999999", ncpu: 2, wantErr: "only 2 CPUs"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, p, err := parseCPUs(tc.in, tc.ncpu)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseCPUs(%q, %d) = %d, %d, %v; want ErrInvalidLimit containing %q", tc.in, tc.ncpu, q, p, err, tc.wantErr)
				}
				return
			}
			if err != nil || q != tc.quota || p != DefaultCPUPeriod {
				t.Fatalf("parseCPUs(%q, %d) = %d, %d, %v; want %d, %d", tc.in, tc.ncpu, q, p, err, tc.quota, DefaultCPUPeriod)
			}
		})
	}
}

func TestParseCPUsUsesThisMachine(t *testing.T) {
	// 0.01 is always acceptable, 100000 CPUs never on a test machine.
	if q, p, err := ParseCPUs("0.01"); err != nil || q != 1000 || p != DefaultCPUPeriod {
		t.Fatalf("ParseCPUs(0.01) = %d, %d, %v", q, p, err)
	}
	if _, _, err := ParseCPUs("100000"); err == nil {
		t.Fatal("ParseCPUs(100000) succeeded")
	}
}

func TestValidateCpuset(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"0", true},
		{"0-2", true},
		{"0,2-3", true},
		{"0,1", true},
		{"3,1", true},
		{"0-0", true},
		{"65535", true},
		{"", false},
		{"-1", false},
		{"1-", false},
		{"-", false},
		{"2-1", false},
		{"0,,1", false},
		{"0,", false},
		{",0", false},
		{" 0", false},
		{"0 - 1", false},
		{"a", false},
		{"0-1-2", false},
		{"1.5", false},
		{"+1", false},
		{"65536", false},
		{"0-99999999999999999999", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			err := ValidateCpuset(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateCpuset(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ValidateCpuset(%q) = %v, not ErrInvalidLimit", tc.in, err)
			}
		})
	}
}

func TestCheckCPUsOnline(t *testing.T) {
	tests := []struct {
		want, online string
		errCPU       string // "" means success
	}{
		{"0", "0-1\n", ""},
		{"0-1", "0-1\n", ""},
		{"1,3", "0-1,3\n", ""},
		{"2", "0-1\n", "CPU 2 "},
		{"0-2", "0-1\n", "CPU 2 "},
		{"2", "0-1,3\n", "CPU 2 "},
		{"0", "1-3\n", "CPU 0 "},
	}
	for _, tc := range tests {
		t.Run(tc.want+"/"+strings.TrimSpace(tc.online), func(t *testing.T) {
			err := checkCPUsOnline(tc.want, tc.online)
			if tc.errCPU == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errCPU) || !strings.Contains(err.Error(), "not online") {
				t.Fatalf("checkCPUsOnline(%q, %q) = %v, want %q not online", tc.want, tc.online, err, tc.errCPU)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"zero", Limits{}, true},
		{"all", Limits{Memory: 64 << 20, CPUQuota: 50000, CPUPeriod: 100000, CPUShares: 512, Cpuset: "0", PidsLimit: 10}, true},
		{"quota without period", Limits{CPUQuota: 50000}, true},
		{"memory negative", Limits{Memory: -1}, false},
		{"memory below minimum", Limits{Memory: MinMemory - 1}, false},
		{"quota negative", Limits{CPUQuota: -1}, false},
		{"quota too small", Limits{CPUQuota: 999}, false},
		{"period without quota", Limits{CPUPeriod: 100000}, false},
		{"period too small", Limits{CPUQuota: 1000, CPUPeriod: 999}, false},
		{"period too large", Limits{CPUQuota: 1000, CPUPeriod: 1000001}, false},
		{"shares too small", Limits{CPUShares: 1}, false},
		{"shares too large", Limits{CPUShares: 262145}, false},
		{"bad cpuset", Limits{Cpuset: "0-"}, false},
		{"pids negative", Limits{PidsLimit: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tc.l, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("Validate(%+v) = %v, not ErrInvalidLimit", tc.l, err)
			}
		})
	}
}

func TestCPUWeight(t *testing.T) {
	// Values of runc's conversion (ConvertCPUSharesToCgroupV2Value of
	// github.com/opencontainers/cgroups v0.1.0, which this package used
	// before it had its own): min, default and max map to cpu.weight's min,
	// default and max; 0 stays unset.
	tests := map[uint64]uint64{0: 0, 1: 1, 2: 1, 3: 2, 10: 4, 100: 17, 256: 35, 512: 59, 1000: 99, 1024: 100,
		2048: 174, 4096: 303, 10000: 627, 100000: 4340, 262143: 10000, 262144: 10000, 300000: 10000}
	for shares, want := range tests {
		if got := cpuWeight(shares); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	// Monotonic over the whole v1 range and always a valid cpu.weight.
	prev := uint64(0)
	for s := uint64(MinCPUShares); s <= MaxCPUShares; s += 97 {
		w := cpuWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("cpuWeight(%d) = %d after %d", s, w, prev)
		}
		prev = w
	}
}

func TestSettings(t *testing.T) {
	l := Limits{Memory: 64 << 20, CPUQuota: 50000, CPUShares: 1024, Cpuset: "0-1", PidsLimit: 20}
	str := func(ss []setting) string {
		var out []string
		for _, s := range ss {
			var ws []string
			for _, w := range s.writes {
				f := w.file + "=" + w.value
				if w.optional {
					f += "?"
				}
				if w.retryLater {
					f += "~"
				}
				if w.verify {
					f += "!"
				}
				ws = append(ws, f)
			}
			out = append(out, s.limit+"("+s.controller+"): "+strings.Join(ws, " "))
		}
		return strings.Join(out, "\n")
	}
	m := strconv.Itoa(64 << 20)
	wantV1 := strings.Join([]string{
		"memory limit(memory): memory.limit_in_bytes=" + m + " memory.memsw.limit_in_bytes=" + m + "?",
		"cpu quota(cpu): cpu.cfs_period_us=100000~ cpu.cfs_quota_us=50000",
		"cpu shares(cpu): cpu.shares=1024!",
		"cpuset(cpuset): cpuset.cpus=0-1",
		"pids limit(pids): pids.max=20",
	}, "\n")
	if got := str(l.settings(false)); got != wantV1 {
		t.Errorf("v1 settings:\n%s\nwant\n%s", got, wantV1)
	}
	wantV2 := strings.Join([]string{
		"memory limit(memory): memory.swap.max=0? memory.max=" + m,
		"cpu quota(cpu): cpu.max=50000 100000",
		"cpu shares(cpu): cpu.weight=100",
		"cpuset(cpuset): cpuset.cpus=0-1",
		"pids limit(pids): pids.max=20",
	}, "\n")
	if got := str(l.settings(true)); got != wantV2 {
		t.Errorf("v2 settings:\n%s\nwant\n%s", got, wantV2)
	}

	if got := (Limits{}).settings(false); len(got) != 0 {
		t.Errorf("empty limits give %d settings", len(got))
	}
	if got := str((Limits{CPUQuota: 20000, CPUPeriod: 50000}).settings(true)); got != "cpu quota(cpu): cpu.max=20000 50000" {
		t.Errorf("explicit period lost: %s", got)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"fockker", true},
		{"a", true},
		{"web-1.prod_x", true},
		{"0123456789", true},
		{strings.Repeat("a", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"/a", false},
		{"-a", false},
		{"_a", false},
		{".a", false},
		{"a b", false},
		{"a,b", false},
		{"a\x00", false},
		{"é", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			err := validateName("cgroup name", tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("validateName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("validateName(%q) = %v, not ErrInvalidName", tc.in, err)
			}
		})
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	// Rejected before any cgroup filesystem is looked at.
	if _, err := New("fockker", "../x", Limits{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("New bad name: %v", err)
	}
	if _, err := New("a/b", "x", Limits{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("New bad parent: %v", err)
	}
	if _, err := New("fockker", "x", Limits{Memory: 1}); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("New bad limit: %v", err)
	}
	if _, err := Load("..", "x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Load bad parent: %v", err)
	}
}
