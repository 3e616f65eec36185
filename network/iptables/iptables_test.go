package iptables

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestRulesCarryOwnerComment(t *testing.T) {
	rules := NetworkRules("fockker0", "fockker0", netip.MustParsePrefix("192.168.0.0/24"))
	rules = append(rules, PortRule("abc", "udp", 5353, netip.MustParseAddrPort("192.168.0.2:53")))
	for _, r := range rules {
		i := slices.Index(r.Spec, "--comment")
		if i < 0 || i+1 >= len(r.Spec) || !strings.HasPrefix(r.Spec[i+1], "fockker:") {
			t.Errorf("rule without owner comment: %s", r)
		}
		if r.Table != tableNAT && r.Table != tableFilter {
			t.Errorf("rule in table %q: %s", r.Table, r)
		}
	}
	last := rules[len(rules)-1]
	want := []string{"-p", "udp", "-m", "udp", "--dport", "5353", "-m", "comment", "--comment", "fockker:ctr:abc",
		"-j", "DNAT", "--to-destination", "192.168.0.2:53"}
	if !slices.Equal(last.Spec, want) || last.Chain != ChainDNAT {
		t.Errorf("port rule %s", last)
	}
}

// TestMain re-executes the test binary in a network namespace of its own
// when running as root, so the rules below never reach the machine's.
func TestMain(m *testing.M) {
	const env = "FOCKKER_IPTABLES_TEST_NETNS"
	if os.Geteuid() == 0 && os.Getenv(env) == "" {
		cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), env+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "re-exec in a new network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func save(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -S: %v\n%s", err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// Ensure adds nothing twice, restores a group's order when one rule went
// missing, Delete removes exactly, and RemoveChains leaves the tables as
// they were.
func TestEnsureDeleteRemoveChains(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes iptables rules (in a network namespace of its own)")
	}
	if os.Getenv("FOCKKER_IPTABLES_TEST_NETNS") == "" {
		t.Fatal("not in a network namespace of its own")
	}
	tb, err := New()
	if err != nil {
		t.Fatal(err)
	}
	pristine := save(t)
	if err := tb.EnsureChains(); err != nil {
		t.Fatal(err)
	}
	withChains := save(t)
	if err := tb.EnsureChains(); err != nil {
		t.Fatal(err)
	}
	if save(t) != withChains {
		t.Fatal("EnsureChains twice changed the rules")
	}

	netA := NetworkRules("a", "bra", netip.MustParsePrefix("10.1.0.0/24"))
	netB := NetworkRules("b", "brb", netip.MustParsePrefix("10.2.0.0/24"))
	for i := 0; i < 2; i++ {
		if err := tb.Ensure(netA); err != nil {
			t.Fatal(err)
		}
		if err := tb.Ensure(netB); err != nil {
			t.Fatal(err)
		}
	}
	all := save(t)
	if n := strings.Count(all, "fockker:net:a"); n != len(netA) {
		t.Fatalf("%d rules of a, want %d:\n%s", n, len(netA), all)
	}

	// Someone deletes a middle rule of a: Ensure puts the group back in order.
	if err := tb.Delete(netA[6:7]); err != nil {
		t.Fatal(err)
	}
	if err := tb.Ensure(netA); err != nil {
		t.Fatal(err)
	}
	lines := func(s, owner string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, owner) {
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := lines(save(t), "fockker:net:a"), lines(all, "fockker:net:a"); !slices.Equal(got, want) {
		t.Fatalf("order not restored:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// While rules remain the chains stay.
	if removed, err := tb.RemoveChains(); err != nil || removed {
		t.Fatalf("RemoveChains with rules = %v, %v", removed, err)
	}
	if err := tb.Delete(netA); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(save(t), "fockker:net:a") || !strings.Contains(save(t), "fockker:net:b") {
		t.Fatal("Delete removed the wrong rules")
	}
	if err := tb.Delete(netA); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := tb.Delete(netB); err != nil {
		t.Fatal(err)
	}
	if removed, err := tb.RemoveChains(); err != nil || !removed {
		t.Fatalf("RemoveChains = %v, %v", removed, err)
	}
	if got := save(t); got != pristine {
		t.Fatalf("left behind:\n%s\nwant\n%s", got, pristine)
	}
	if removed, err := tb.RemoveChains(); err != nil || !removed {
		t.Fatalf("second RemoveChains = %v, %v", removed, err)
	}
	if err := tb.Delete(netB); err != nil {
		t.Fatalf("Delete without chains: %v", err)
	}
}
