package cgroup

import (
	"fmt"
	"math"
	"math/big"
	"runtime"
	"strconv"
	"strings"
)

const (
	// MinMemory is the smallest memory limit accepted, as in docker: below
	// it a container cannot even start its init.
	MinMemory = 6 << 20
	// DefaultCPUPeriod is the CFS period (µs) used by ParseCPUs and when
	// a quota is given without a period.
	DefaultCPUPeriod = 100000
	// MinCPUQuota and the period bounds are the kernel's CFS limits (µs).
	MinCPUQuota  = 1000
	MinCPUPeriod = 1000
	MaxCPUPeriod = 1000000
	// MinCPUShares and MaxCPUShares bound cpu.shares on cgroup v1 (the
	// kernel silently clamps outside this range, so we reject instead).
	MinCPUShares = 2
	MaxCPUShares = 262144
	// maxCPUID bounds CPU numbers in a cpuset list (syntax check only).
	maxCPUID = 1<<16 - 1
)

// Limits are the resource limits of one container; zero values mean "not set".
type Limits struct {
	Memory    int64  // bytes (-m)
	CPUQuota  int64  // microseconds per CPUPeriod (--cpus 0.5 -> 50000/100000)
	CPUPeriod uint64 // microseconds; 0 means DefaultCPUPeriod when CPUQuota is set
	CPUShares uint64 // --cpushare (v1 cpu.shares; converted to cpu.weight on v2)
	Cpuset    string // --cpuset, e.g. "0-1" or "0,1"
	PidsLimit int64  // --pids-limit
	// AllDevices allows every device (--privileged). Otherwise only runc's
	// default set may be read or written, while any device node may be
	// created (mknod) but not used.
	AllDevices bool
}

// deviceRules is the allow list of the container's devices cgroup.
func (l Limits) deviceRules() []deviceRule {
	if l.AllDevices {
		return []deviceRule{{typ: 'a', major: anyID, minor: anyID, access: "rwm", allow: true}}
	}
	rule := func(typ byte, major, minor int64, access string) deviceRule {
		return deviceRule{typ: typ, major: major, minor: minor, access: access, allow: true}
	}
	return []deviceRule{
		rule('c', anyID, anyID, "m"),
		rule('b', anyID, anyID, "m"),
		rule('c', 1, 3, "rwm"),       // /dev/null
		rule('c', 1, 5, "rwm"),       // /dev/zero
		rule('c', 1, 7, "rwm"),       // /dev/full
		rule('c', 1, 8, "rwm"),       // /dev/random
		rule('c', 1, 9, "rwm"),       // /dev/urandom
		rule('c', 5, 0, "rwm"),       // /dev/tty
		rule('c', 5, 1, "rwm"),       // /dev/console
		rule('c', 5, 2, "rwm"),       // /dev/ptmx
		rule('c', 136, anyID, "rwm"), // /dev/pts/*
	}
}

// Validate checks every set limit for range and syntax. It does not look at
// the host: CPUs being online is checked by Create.
func (l Limits) Validate() error {
	if l.Memory < 0 || (l.Memory > 0 && l.Memory < MinMemory) {
		return fmt.Errorf("%w: memory %d bytes: minimum is %d (6MiB)", ErrInvalidLimit, l.Memory, MinMemory)
	}
	if l.CPUQuota < 0 || (l.CPUQuota > 0 && l.CPUQuota < MinCPUQuota) {
		return fmt.Errorf("%w: cpu quota %dµs: minimum is %dµs", ErrInvalidLimit, l.CPUQuota, MinCPUQuota)
	}
	if l.CPUPeriod != 0 {
		if l.CPUQuota == 0 {
			return fmt.Errorf("%w: cpu period %dµs given without a cpu quota", ErrInvalidLimit, l.CPUPeriod)
		}
		if l.CPUPeriod < MinCPUPeriod || l.CPUPeriod > MaxCPUPeriod {
			return fmt.Errorf("%w: cpu period %dµs: must be between %d and %d", ErrInvalidLimit, l.CPUPeriod, MinCPUPeriod, MaxCPUPeriod)
		}
	}
	if l.CPUShares != 0 && (l.CPUShares < MinCPUShares || l.CPUShares > MaxCPUShares) {
		return fmt.Errorf("%w: cpu shares %d: must be between %d and %d", ErrInvalidLimit, l.CPUShares, MinCPUShares, MaxCPUShares)
	}
	if l.Cpuset != "" {
		if err := ValidateCpuset(l.Cpuset); err != nil {
			return err
		}
	}
	if l.PidsLimit < 0 {
		return fmt.Errorf("%w: pids limit %d: must be positive (0 means unlimited)", ErrInvalidLimit, l.PidsLimit)
	}
	return nil
}

// ParseMemory parses a memory size as given to -m: a decimal number with an
// optional binary unit b, k, m, g or t (case-insensitive, optionally followed
// by "b" or "ib": "512MB", "1GiB"). Fractions are allowed ("1.5g") and
// rounded down to whole bytes. Signs, spaces, exponents and values below
// MinMemory (6MiB) or above the int64 range are rejected.
func ParseMemory(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("%w: memory %q: %s", ErrInvalidLimit, s, why)
	}
	if s == "" {
		return bad("empty value")
	}
	num := strings.ToLower(s)
	needUnit := false
	if rest, ok := strings.CutSuffix(num, "ib"); ok {
		num, needUnit = rest, true
	} else if rest, ok := strings.CutSuffix(num, "b"); ok {
		num = rest
	}
	mult := int64(1)
	if n := len(num); n > 0 {
		if i := strings.IndexByte("kmgt", num[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			num = num[:n-1]
		} else if needUnit {
			return bad(`"ib" needs a unit (k, m, g or t)`)
		}
	}
	if !isDecimal(num, false) {
		return bad("want a number with an optional unit b, k, m, g or t (e.g. 100m, 1g)")
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("not a number")
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	bytes := new(big.Int).Quo(r.Num(), r.Denom())
	if !bytes.IsInt64() {
		return bad("too large")
	}
	v := bytes.Int64()
	if v < MinMemory {
		return bad("below the minimum of 6MiB")
	}
	return v, nil
}

// ParseCPUs parses --cpus (a decimal number of CPUs, e.g. "0.5" or "1.25")
// into a CFS quota and period: "0.5" is 50000µs every 100000µs. Like docker
// it accepts 0.01 up to the number of CPUs this process may use; digits
// past 1µs of quota are dropped.
func ParseCPUs(s string) (quota int64, period uint64, err error) {
	return parseCPUs(s, runtime.NumCPU())
}

func parseCPUs(s string, ncpu int) (int64, uint64, error) {
	bad := func(why string) (int64, uint64, error) {
		return 0, 0, fmt.Errorf("%w: cpus %q: %s", ErrInvalidLimit, s, why)
	}
	if !isDecimal(s, true) {
		return bad("want a positive decimal number such as 0.5 or 2")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return bad("not a number")
	}
	if r.Sign() <= 0 {
		return bad("must be greater than 0")
	}
	if r.Cmp(new(big.Rat).SetInt64(int64(ncpu))) > 0 {
		return bad(fmt.Sprintf("range of CPUs is from 0.01 to %d, as there are only %d CPUs available", ncpu, ncpu))
	}
	r.Mul(r, new(big.Rat).SetInt64(DefaultCPUPeriod))
	q := new(big.Int).Quo(r.Num(), r.Denom()).Int64() // <= ncpu*1e5, fits
	if q < MinCPUQuota {
		return bad("minimum is 0.01")
	}
	return q, DefaultCPUPeriod, nil
}

// isDecimal reports whether s is digits with an optional fraction ("1",
// "1.5"); with leadingDot also ".5". No sign, spaces or exponent.
func isDecimal(s string, leadingDot bool) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if hasDot && frac == "" {
		return false
	}
	if intPart == "" && (!hasDot || !leadingDot) {
		return false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

// cpuRange is an inclusive range of CPU numbers.
type cpuRange struct{ lo, hi int }

// ValidateCpuset checks the syntax of a cpuset list: comma-separated CPU
// numbers or ranges, e.g. "0", "0-2", "0,2-3". Whether the CPUs are online
// is checked by Create.
func ValidateCpuset(s string) error {
	_, err := parseCPUList(s)
	return err
}

func parseCPUList(s string) ([]cpuRange, error) {
	bad := func(why string) ([]cpuRange, error) {
		return nil, fmt.Errorf("%w: cpuset %q: %s", ErrInvalidLimit, s, why)
	}
	if s == "" {
		return bad("empty list")
	}
	var out []cpuRange
	for item := range strings.SplitSeq(s, ",") {
		loS, hiS, isRange := strings.Cut(item, "-")
		lo, err := parseCPUNum(loS)
		if err != nil {
			return bad(fmt.Sprintf("bad CPU %q (want e.g. 0, 0-2 or 0,2-3)", item))
		}
		hi := lo
		if isRange {
			if hi, err = parseCPUNum(hiS); err != nil {
				return bad(fmt.Sprintf("bad CPU range %q (want e.g. 0-2)", item))
			}
			if hi < lo {
				return bad(fmt.Sprintf("range %q is reversed", item))
			}
		}
		out = append(out, cpuRange{lo, hi})
	}
	return out, nil
}

func parseCPUNum(s string) (int, error) {
	if !isDecimal(s, false) || strings.Contains(s, ".") {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxCPUID {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// checkCPUsOnline returns an error naming the first CPU of the cpuset list
// want that is not in the kernel's online list (as in
// /sys/devices/system/cpu/online).
func checkCPUsOnline(want, online string) error {
	req, err := parseCPUList(want)
	if err != nil {
		return err
	}
	have, err := parseCPUList(strings.TrimSpace(online))
	if err != nil {
		return fmt.Errorf("parse online CPUs %q: %w", online, err)
	}
	for _, r := range req {
		for cpu := r.lo; cpu <= r.hi; cpu++ {
			if !inRanges(have, cpu) {
				return fmt.Errorf("%w: cpuset %q: CPU %d is not online (online: %s)",
					ErrInvalidLimit, want, cpu, strings.TrimSpace(online))
			}
		}
	}
	return nil
}

func inRanges(rs []cpuRange, cpu int) bool {
	for _, r := range rs {
		if cpu >= r.lo && cpu <= r.hi {
			return true
		}
	}
	return false
}

// cpuWeight converts v1 cpu.shares to a v2 cpu.weight the way runc does:
// 0 stays 0 (unset); otherwise 10^((l² + 125·l)/612 − 7/34) rounded up,
// l = log2(shares), a quadratic fit in the log domain that maps 2, 1024 and
// 262144 to 1, 100 and 10000 (clamped outside that range).
func cpuWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	return uint64(math.Ceil(math.Pow(10, (l*l+125*l)/612.0-7.0/34.0)))
}

// setting is one user-visible limit: the controller it needs and the
// control files that apply it, so a failure can name both.
type setting struct {
	limit      string
	controller string
	writes     []write
}

// write is one value written to one control file of the setting's
// controller directory.
type write struct {
	file, value string
	// optional: a missing file (swap accounting off) skips the write.
	optional bool
	// retryLater: EINVAL is retried once after the setting's other writes
	// (a CFS period the kernel accepts only once the quota is set).
	retryLater bool
	// verify: read the file back and fail unless the kernel kept the value
	// (it clamps some silently).
	verify bool
}

// settings splits l into one setting per limit, in the order they are
// applied, with cgroup v2 files when unified (cpu.weight instead of
// cpu.shares, and so on) and v1 files otherwise. These are the writes the
// fs and fs2 managers of github.com/opencontainers/cgroups make for them.
//
// Memory: the container gets no swap on top of -m. On v1 with swap
// accounting memory.memsw.limit_in_bytes is set equal to the memory limit
// (skipped where the file does not exist); on v2 memory.swap.max is set to 0
// (skipped when swap is off). Exceeding -m therefore OOM-kills instead of
// swapping.
func (l Limits) settings(unified bool) []setting {
	var out []setting
	if l.Memory > 0 {
		m := strconv.FormatInt(l.Memory, 10)
		w := []write{{file: "memory.limit_in_bytes", value: m}, {file: "memory.memsw.limit_in_bytes", value: m, optional: true}}
		if unified {
			w = []write{{file: "memory.swap.max", value: "0", optional: true}, {file: "memory.max", value: m}}
		}
		out = append(out, setting{"memory limit", "memory", w})
	}
	if l.CPUQuota > 0 {
		period := l.CPUPeriod
		if period == 0 {
			period = DefaultCPUPeriod
		}
		q, p := strconv.FormatInt(l.CPUQuota, 10), strconv.FormatUint(period, 10)
		w := []write{{file: "cpu.cfs_period_us", value: p, retryLater: true}, {file: "cpu.cfs_quota_us", value: q}}
		if unified {
			w = []write{{file: "cpu.max", value: q + " " + p}}
		}
		out = append(out, setting{"cpu quota", "cpu", w})
	}
	if l.CPUShares > 0 {
		w := []write{{file: "cpu.shares", value: strconv.FormatUint(l.CPUShares, 10), verify: true}}
		if unified {
			w = []write{{file: "cpu.weight", value: strconv.FormatUint(cpuWeight(l.CPUShares), 10)}}
		}
		out = append(out, setting{"cpu shares", "cpu", w})
	}
	if l.Cpuset != "" {
		out = append(out, setting{"cpuset", "cpuset", []write{{file: "cpuset.cpus", value: l.Cpuset}}})
	}
	if l.PidsLimit > 0 {
		out = append(out, setting{"pids limit", "pids", []write{{file: "pids.max", value: strconv.FormatInt(l.PidsLimit, 10)}}})
	}
	return out
}

// deviceWritesV1 is how the v1 devices controller gets the rules, in a
// freshly created cgroup (which inherits its parent's "allow everything"):
// every device denied, then the allow list; or everything allowed. These
// are the writes runc's devices emulator computes for that transition.
func (l Limits) deviceWritesV1() []write {
	rules := l.deviceRules()
	if l.AllDevices {
		return []write{{file: "devices.allow", value: rules[0].String()}}
	}
	out := []write{{file: "devices.deny", value: "a *:* rwm"}}
	for _, r := range rules {
		out = append(out, write{file: "devices.allow", value: r.String()})
	}
	return out
}

// checkV1Mounted fails if a setting needs a controller with no hierarchy
// in paths (the v1 manager's subsystem -> directory map).
func checkV1Mounted(paths map[string]string, ss []setting) error {
	for _, s := range ss {
		if _, ok := paths[s.controller]; !ok {
			return fmt.Errorf("cannot apply %s: %w: %q is not mounted", s.limit, ErrControllerUnavailable, s.controller)
		}
	}
	return nil
}

// checkV2Available fails if a setting needs a controller missing from the
// content of a cgroup.controllers file read at where.
func checkV2Available(controllers, where string, ss []setting) error {
	have := make(map[string]bool)
	for _, c := range strings.Fields(controllers) {
		have[c] = true
	}
	for _, s := range ss {
		if !have[s.controller] {
			return fmt.Errorf("cannot apply %s: %w: %q is not in %s (has: %q)",
				s.limit, ErrControllerUnavailable, s.controller, where, strings.TrimSpace(controllers))
		}
	}
	return nil
}
