package network

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkContainerLifecycle times what "run --rm" asks of this package
// for a container on the default network: EnsureDefault, Connect, and,
// after the container's process exited, Disconnect; with and without a
// published port (then ReleasePorts too, as a stop does). Each phase is
// reported in ms/op, as wall time and as CPU time of the process. It runs,
// like the tests, in a network namespace of its own:
//
//	go test -run '^$' -bench Lifecycle -benchtime 30x ./network/
func BenchmarkContainerLifecycle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates network namespaces, bridges, veths and iptables rules")
	}
	if os.Getenv(isolatedEnv) == "" {
		b.Fatal("not running in its own network namespace")
	}
	for _, bc := range []struct {
		name  string
		ports []PortMapping
	}{{"bridge", nil}, {"port", []PortMapping{pm(8080, 80, "tcp")}}} {
		b.Run(bc.name, func(b *testing.B) {
			m := NewManager(b.TempDir())
			if _, err := m.EnsureDefault(); err != nil {
				b.Fatal(err)
			}
			var ensure, connect, release, disconnect time.Duration
			var ensureCPU, connectCPU, disconnectCPU time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sleeper := exec.Command("unshare", "--net", "--", "sleep", "600")
				if err := sleeper.Start(); err != nil {
					b.Fatal(err)
				}
				// unshare has made the namespace once sleep runs.
				for {
					if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", sleeper.Process.Pid)); err == nil && string(comm) == "sleep\n" {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StartTimer()
				c0 := cpuTime(b)
				t0 := time.Now()
				if _, err := m.EnsureDefault(); err != nil {
					b.Fatal(err)
				}
				c1 := cpuTime(b)
				t1 := time.Now()
				ep, err := m.Connect(DefaultName, fmt.Sprintf("bench%d", i), sleeper.Process.Pid, bc.ports)
				if err != nil {
					b.Fatal(err)
				}
				c2 := cpuTime(b)
				t2 := time.Now()
				if len(bc.ports) > 0 {
					if err := m.ReleasePorts(ep); err != nil {
						b.Fatal(err)
					}
				}
				release += time.Since(t2)
				b.StopTimer()
				sleeper.Process.Kill()
				sleeper.Wait()
				b.StartTimer()
				c3 := cpuTime(b)
				t3 := time.Now()
				if err := m.Disconnect(ep); err != nil {
					b.Fatal(err)
				}
				t4 := time.Now()
				disconnectCPU += cpuTime(b) - c3
				ensureCPU += c1 - c0
				connectCPU += c2 - c1
				ensure += t1.Sub(t0)
				connect += t2.Sub(t1)
				disconnect += t4.Sub(t3)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(ensure), "ensure-ms/op")
			b.ReportMetric(ms(connect), "connect-ms/op")
			b.ReportMetric(ms(release), "release-ms/op")
			b.ReportMetric(ms(disconnect), "disconnect-ms/op")
			b.ReportMetric(ms(ensureCPU), "ensure-cpu-ms/op")
			b.ReportMetric(ms(connectCPU), "connect-cpu-ms/op")
			b.ReportMetric(ms(disconnectCPU), "disconnect-cpu-ms/op")
			if err := m.Remove(DefaultName, true); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
