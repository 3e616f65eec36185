package tests

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// unified reports whether this host runs pure cgroup v2.
func unified() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// cgroupKV reads a "key value" line out of a flat-keyed cgroup file (memory.oom_control,
// memory.events, pids.events).
func cgroupKV(t *testing.T, ctrl, name, file, key string) int {
	t.Helper()
	for _, l := range strings.Split(cgroupFile(t, ctrl, name, file), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == key {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %q", file, key)
	return 0
}

// TestMemoryLimitOOMKills runs a container that allocates ~100MB under -m 32m: the kernel
// must kill it (exit 137) and the cgroup must say so.
func TestMemoryLimitOOMKills(t *testing.T) {
	f := newFK(t)
	name := uniq("oom")
	// The shell keeps the whole 100MB string in memory.
	r := f.run("run", "--name", name, "-m", "32m", "busybox", "sh", "-c",
		`x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived ${#x}`)
	if r.code != 137 || strings.Contains(r.stdout, "survived") {
		t.Errorf("want the container OOM-killed (exit 137): %s", r)
	}
	rec := f.record(name)
	if rec["status"] != "stopped" || num(t, rec, "exitCode") != 137 {
		t.Errorf("record: status %v exitCode %v", rec["status"], rec["exitCode"])
	}
	if rec["oomKilled"] != true {
		t.Errorf("record oomKilled = %v, want true after the kernel OOM-killed the container", rec["oomKilled"])
	}
	if unified() {
		if got := cgroupFile(t, "memory", name, "memory.max"); got != "33554432" {
			t.Errorf("memory.max = %s", got)
		}
		if n := cgroupKV(t, "memory", name, "memory.events", "oom_kill"); n < 1 {
			t.Errorf("memory.events oom_kill = %d", n)
		}
	} else {
		if got := cgroupFile(t, "memory", name, "memory.limit_in_bytes"); got != "33554432" {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if n := cgroupKV(t, "memory", name, "memory.oom_control", "oom_kill"); n < 1 {
			t.Errorf("memory.oom_control oom_kill = %d", n)
		}
		if max, _ := strconv.Atoi(cgroupFile(t, "memory", name, "memory.max_usage_in_bytes")); max > 33554432 {
			t.Errorf("memory.max_usage_in_bytes %d above the limit", max)
		}
	}
	// The same allocation without a limit succeeds: the limit, not the machine, killed it.
	if out := f.ok("run", "--rm", "busybox", "sh", "-c", `x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived ${#x}`); out != "survived 100000000\n" {
		t.Errorf("unlimited container: %q", out)
	}
	f.ok("rm", name)
	assertCgroupGone(t, name)
}

// TestPidsLimit checks that forks past --pids-limit fail inside the container.
func TestPidsLimit(t *testing.T) {
	f := newFK(t)
	name := uniq("pids")
	r := f.run("run", "--name", name, "--pids-limit", "10", "busybox", "sh", "-c",
		`i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo all forked`)
	if strings.Contains(r.stdout, "all forked") || !strings.Contains(r.stderr, "can't fork") {
		t.Errorf("20 forks under --pids-limit 10 did not fail: %s", r)
	}
	if got := cgroupFile(t, "pids", name, "pids.max"); got != "10" {
		t.Errorf("pids.max = %s", got)
	}
	if n := cgroupKV(t, "pids", name, "pids.events", "max"); n < 1 {
		t.Errorf("pids.events max = %d: the kernel refused no fork", n)
	}
	// Below the limit everything forks.
	if out := f.ok("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
		`i=0; while [ $i -lt 5 ]; do sleep 0.2 & i=$((i+1)); done; wait; echo ok`); out != "ok\n" {
		t.Errorf("5 forks under --pids-limit 10: %q", out)
	}
	f.ok("rm", name)
	assertCgroupGone(t, name)
}

// TestCPULimits checks --cpus, --cpushare and --cpuset in the cgroup files and, for the
// cpuset, in the container's own view of its CPUs.
func TestCPULimits(t *testing.T) {
	f := newFK(t)
	name := uniq("cpu")
	out := f.ok("run", "--name", name, "--cpus", "0.5", "--cpushare", "512", "--cpuset", "0", "busybox", "sh", "-c",
		`nproc; grep Cpus_allowed_list /proc/self/status | cut -f2`)
	if out != "1\n0\n" {
		t.Errorf("the container sees CPUs %q, want only CPU 0", out)
	}
	if unified() {
		if got := cgroupFile(t, "cpu", name, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
	} else {
		for file, want := range map[string]string{"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512"} {
			if got := cgroupFile(t, "cpu", name, file); got != want {
				t.Errorf("%s = %s, want %s", file, got, want)
			}
		}
	}
	if got := cgroupFile(t, "cpuset", name, "cpuset.cpus"); got != "0" {
		t.Errorf("cpuset.cpus = %s", got)
	}
	f.ok("rm", name)
	assertCgroupGone(t, name)

	t.Run("more than one cpu", func(t *testing.T) {
		f := f.with(t)
		name := uniq("cpu")
		f.ok("run", "--name", name, "--cpus", "1.5", "busybox", "true")
		if unified() {
			if got := cgroupFile(t, "cpu", name, "cpu.max"); got != "150000 100000" {
				t.Errorf("cpu.max = %s", got)
			}
		} else if got := cgroupFile(t, "cpu", name, "cpu.cfs_quota_us"); got != "150000" {
			t.Errorf("cpu.cfs_quota_us = %s", got)
		}
		f.ok("rm", name)
		assertCgroupGone(t, name)
	})

	t.Run("no limits means none", func(t *testing.T) {
		f := f.with(t)
		name := uniq("nolimit")
		f.ok("run", "--name", name, "busybox", "true")
		if !unified() {
			if got := cgroupFile(t, "cpu", name, "cpu.cfs_quota_us"); got != "-1" {
				t.Errorf("cpu.cfs_quota_us = %s without --cpus", got)
			}
			if got := cgroupFile(t, "pids", name, "pids.max"); got != "max" {
				t.Errorf("pids.max = %s without --pids-limit", got)
			}
		}
		f.ok("rm", name)
		assertCgroupGone(t, name)
	})
}
