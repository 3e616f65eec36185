package network

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkContainerLifecycle times what "run --rm" asks of this package
// for a container on the default network: EnsureDefault, Connect, and,
// after the container's process exited, Disconnect; with and without a
// published port (then ReleasePorts too, as a stop does). Each phase is
// reported in ms/op. It runs, like the tests, in a network namespace of its
// own:
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
				t0 := time.Now()
				if _, err := m.EnsureDefault(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				ep, err := m.Connect(DefaultName, fmt.Sprintf("bench%d", i), sleeper.Process.Pid, bc.ports)
				if err != nil {
					b.Fatal(err)
				}
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
				t3 := time.Now()
				if err := m.Disconnect(ep); err != nil {
					b.Fatal(err)
				}
				t4 := time.Now()
				ensure += t1.Sub(t0)
				connect += t2.Sub(t1)
				disconnect += t4.Sub(t3)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(ensure), "ensure-ms/op")
			b.ReportMetric(ms(connect), "connect-ms/op")
			b.ReportMetric(ms(release), "release-ms/op")
			b.ReportMetric(ms(disconnect), "disconnect-ms/op")
			if err := m.Remove(DefaultName, true); err != nil {
				b.Fatal(err)
			}
		})
	}
}
