package cgroup

// Root-only benchmark of the path `fockker run --rm` takes through this
// package: New+Create, Add of a freshly started process, Destroy once it is
// gone. Starting and reaping the process is not timed. Each phase is also
// reported on its own (create-µs/op, add-µs/op, destroy-µs/op).
//
//	go test -run '^$' -bench CreateAddDestroy -count 10 ./container/cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkCreateAddDestroy(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create cgroups")
	}
	for _, bc := range []struct {
		name string
		l    Limits
	}{
		{"nolimits", Limits{}},
		{"limits", Limits{Memory: 64 << 20, CPUQuota: 50000, PidsLimit: 100}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchCreateAddDestroy(b, bc.l)
		})
	}
}

func benchCreateAddDestroy(b *testing.B, l Limits) {
	rnd := make([]byte, 4)
	if _, err := rand.Read(rnd); err != nil {
		b.Fatal(err)
	}
	parent := "fockker-bench-" + hex.EncodeToString(rnd)
	b.Cleanup(func() {
		c, err := Load(parent, "x")
		if err != nil {
			b.Error(err)
			return
		}
		for _, p := range c.Paths() {
			if _, err := os.Stat(filepath.Dir(p)); err == nil {
				b.Errorf("%s left behind", filepath.Dir(p))
				_ = os.Remove(filepath.Dir(p))
			}
		}
	})
	var create, add, destroy time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		c, err := New(parent, fmt.Sprintf("c%d", i), l)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Create(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		b.StopTimer()
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t2 := time.Now()
		addErr := c.Add(cmd.Process.Pid)
		t3 := time.Now()
		b.StopTimer()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if addErr != nil {
			_ = c.Destroy()
			b.Fatal(addErr)
		}
		b.StartTimer()
		t4 := time.Now()
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
		t5 := time.Now()
		create += t1.Sub(t0)
		add += t3.Sub(t2)
		destroy += t5.Sub(t4)
	}
	n := float64(b.N)
	b.ReportMetric(float64(create.Microseconds())/n, "create-µs/op")
	b.ReportMetric(float64(add.Microseconds())/n, "add-µs/op")
	b.ReportMetric(float64(destroy.Microseconds())/n, "destroy-µs/op")
}
