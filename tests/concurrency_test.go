package tests

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// parallel runs fn(i) for i in [0,n) concurrently and returns the results.
func parallel(f *fk, n int, args func(i int) []string) ([]result, []error) {
	results, errs := make([]result, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i], errs[i] = f.exec(args(i)...)
		}(i)
	}
	close(start)
	wg.Wait()
	return results, errs
}

// TestConcurrentRuns starts many containers at once, races several runs for one name, and
// removes everything at once: every operation is exact and nothing is left.
func TestConcurrentRuns(t *testing.T) {
	f := newFK(t)
	const distinct = 20
	names := make([]string, distinct)
	for i := range names {
		names[i] = uniq("many")
	}
	results, errs := parallel(f, distinct, func(i int) []string {
		return []string{"run", "-d", "--name", names[i], "busybox", "sleep", "100"}
	})
	for i, r := range results {
		if errs[i] != nil || r.code != 0 || r.stdout != "Container "+names[i]+" started\n" {
			t.Errorf("run -d %s: %v %s", names[i], errs[i], r)
		}
	}

	// Eight runs race for one name: exactly one wins, the others leave nothing behind.
	const racers = 8
	one := uniq("one")
	results, errs = parallel(f, racers, func(i int) []string {
		return []string{"run", "-d", "--name", one, "busybox", "sleep", "100"}
	})
	wins := 0
	for i, r := range results {
		switch {
		case errs[i] != nil:
			t.Errorf("racer %d: %v", i, errs[i])
		case r.code == 0:
			wins++
		case r.code != 125 || !strings.Contains(r.stderr, "already in use"):
			t.Errorf("losing racer %d: %s", i, r)
		}
	}
	if wins != 1 {
		t.Errorf("%d runs won the name %s, want exactly 1", wins, one)
	}
	all := append(append([]string{}, names...), one)
	for _, n := range all {
		if st := f.record(n)["status"]; st != "running" {
			t.Errorf("%s: status %v", n, st)
		}
	}
	// Nothing in the shared mount point (each container mounts on it in its own namespace).
	if ents, err := os.ReadDir(filepath.Join(f.image, "mnt")); err != nil || len(ents) > 0 {
		t.Errorf("mount point holds %v (%v)", ents, err)
	}
	// Exactly one record and one set of layers per name; no temporary leftovers.
	for _, dir := range []string{f.state, filepath.Join(f.image, "writeLayer"), filepath.Join(f.image, "workLayer")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			if e.Name() != "network" && !f.emptySpare(e) {
				got = append(got, e.Name())
			}
		}
		if len(got) != len(all) {
			t.Errorf("%s has %d entries, want %d: %v", dir, len(got), len(all), got)
		}
	}
	if cg := cgroupsOf(one); len(cg) == 0 {
		t.Errorf("the winner has no cgroup")
	}
	ids := strings.Fields(f.ok("ps", "-q"))
	if len(ids) != len(all) {
		t.Errorf("ps -q lists %d containers, want %d", len(ids), len(all))
	}

	results, errs = parallel(f, len(all), func(i int) []string { return []string{"rm", "-f", all[i]} })
	for i, r := range results {
		if errs[i] != nil || r.code != 0 {
			t.Errorf("rm -f %s: %v %s", all[i], errs[i], r)
		}
	}
	for _, n := range all {
		assertCgroupGone(t, n)
	}
	f.assertNoResidue()
	if out := f.ok("ps", "-q"); out != "" {
		t.Errorf("ps -q after rm: %q", out)
	}
}

// TestCLIHelp checks --version, help and that run's help mentions every flag of run.
func TestCLIHelp(t *testing.T) {
	f := newFK(t)
	if out := f.ok("--version"); !strings.HasPrefix(out, "fockker version ") || len(strings.TrimSpace(out)) <= len("fockker version ") {
		t.Errorf("--version: %q", out)
	}
	help := f.ok("help")
	for _, c := range []string{"run", "ps", "stop", "rm", "logs", "inspect"} {
		if !strings.Contains(help, "\n   "+c+" ") {
			t.Errorf("help does not list %q:\n%s", c, help)
		}
		if r := f.run(c, "--help"); r.code != 0 || !strings.Contains(r.stdout, "fockker "+c) {
			t.Errorf("%s --help: %s", c, r)
		}
	}
	runHelp := f.ok("run", "--help")
	for _, flag := range []string{"--it", "-i", "-t", "-d", "--name", "-v", "-m", "--cpus", "--cpushare", "--cpuset",
		"--pids-limit", "-e", "--env-file", "-w", "--hostname", "--rm"} {
		if !strings.Contains(runHelp, " "+flag+" ") && !strings.Contains(runHelp, " "+flag+",") {
			t.Errorf("run --help does not mention %s", flag)
		}
	}
	for c, flags := range map[string][]string{"stop": {"-t"}, "rm": {"-f"}, "logs": {"-f"}, "ps": {"-q", "--format"}} {
		out := f.ok(c, "--help")
		for _, flag := range flags {
			if !strings.Contains(out, " "+flag+" ") && !strings.Contains(out, " "+flag+",") {
				t.Errorf("%s --help does not mention %s:\n%s", c, flag, out)
			}
		}
	}
}
