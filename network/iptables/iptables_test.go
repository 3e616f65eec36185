package iptables

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes iptables rules (in a network namespace of its own)")
	}
	if os.Getenv("FOCKKER_IPTABLES_TEST_NETNS") == "" {
		t.Fatal("not in a network namespace of its own")
	}
}

// forBackends runs fn once with each installed backend first in $PATH (as
// iptables, iptables-save and iptables-restore).
func forBackends(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range []struct{ backend, multi string }{
		{backendNFT, "xtables-nft-multi"},
		{backendLegacy, "xtables-legacy-multi"},
	} {
		t.Run(b.backend, func(t *testing.T) {
			bin, err := exec.LookPath(b.multi)
			if err != nil {
				t.Skipf("%s not installed: %v", b.multi, err)
			}
			dir := t.TempDir()
			for _, name := range []string{"iptables", "iptables-save", "iptables-restore"} {
				if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			fn(t, b.backend)
		})
	}
}

// Ensure adds nothing twice, restores a group's order when one rule went
// missing, Delete removes exactly, and RemoveChains leaves the tables as
// they were.
func TestEnsureDeleteRemoveChains(t *testing.T) {
	requireRoot(t)
	forBackends(t, func(t *testing.T, _ string) { ensureDeleteRemoveChains(t, New("")) })
	forBackends(t, func(t *testing.T, _ string) {
		ensureDeleteRemoveChains(t, New(filepath.Join(t.TempDir(), "cache")))
	})
}

func ensureDeleteRemoveChains(t *testing.T, tb *Tables) {
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

// What iptables-save prints of our rules is exactly what we write, on
// both backends: a second Ensure finds everything in place and runs no
// iptables-restore.
func TestSpecsAsSaved(t *testing.T) {
	requireRoot(t)
	forBackends(t, func(t *testing.T, _ string) {
		tb := New("")
		groups := [][]Rule{
			NetworkRules("fockker0", "fockker0", netip.MustParsePrefix("192.168.0.0/24")),
			NetworkRules("wide", "wide", netip.MustParsePrefix("10.88.0.0/16")),
			{PortRule("c1", "tcp", 8080, netip.MustParseAddrPort("192.168.0.2:80")),
				PortRule("c1", "udp", 5353, netip.MustParseAddrPort("192.168.0.2:53"))},
		}
		for _, g := range groups {
			if err := tb.Ensure(g); err != nil {
				t.Fatal(err)
			}
		}
		saved := save(t)
		for _, g := range groups {
			for _, r := range g {
				words := slices.Clone(r.Spec)
				for i, w := range words {
					if strings.Contains(w, ":") && words[i-1] == "--comment" {
						words[i] = `"` + w + `"`
					}
				}
				if line := "-A " + r.Chain + " " + strings.Join(words, " ") + "\n"; !strings.Contains(saved, line) {
					t.Errorf("iptables prints %s otherwise:\n%s", r, saved)
				}
			}
		}
		for _, g := range groups {
			fresh := New("")
			if err := fresh.Ensure(g); err != nil {
				t.Fatal(err)
			}
			if fresh.Commands != 1 {
				t.Errorf("Ensure of a group in place ran %d commands, want 1 (iptables-save)", fresh.Commands)
			}
		}
		if err := tb.DeleteOwners(Owners(slices.Concat(groups...))...); err != nil {
			t.Fatal(err)
		}
		if removed, err := tb.RemoveChains(); err != nil || !removed {
			t.Fatalf("RemoveChains = %v, %v", removed, err)
		}
	})
}

// With a cache file and the nf_tables backend, reads cost no command while
// nothing changed; a change of ours keeps the cache current; a change by
// someone else, or a foreign cache, is noticed and repaired.
func TestCache(t *testing.T) {
	requireRoot(t)
	forBackends(t, func(t *testing.T, backend string) {
		cache := filepath.Join(t.TempDir(), "cache")
		tb := New(cache)
		netA := NetworkRules("a", "bra", netip.MustParsePrefix("10.1.0.0/24"))
		port := []Rule{PortRule("c1", "tcp", 8080, netip.MustParseAddrPort("10.1.0.2:80"))}
		commands := func(what string, want int, fn func() error) {
			t.Helper()
			before := tb.Commands
			if err := fn(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if got := tb.Commands - before; got != want {
				t.Errorf("%s ran %d commands, want %d", what, got, want)
			}
		}
		if backend == backendLegacy {
			// No cache: one read per Tables, which trusts itself after.
			commands("Ensure", 2, func() error { return tb.Ensure(netA) })
			commands("Ensure again", 0, func() error { return tb.Ensure(netA) })
			commands("Ensure of ports", 1, func() error { return tb.Ensure(port) })
			commands("DeleteOwners", 1, func() error { return tb.DeleteOwners(ContainerComment("c1")) })
			tb = New(cache)
			commands("Ensure with a new Tables", 1, func() error { return tb.Ensure(netA) })
			if _, err := os.Stat(cache); !os.IsNotExist(err) {
				t.Errorf("legacy backend wrote a cache: %v", err)
			}
		} else {
			// Read, change both tables, read again for the cache.
			commands("Ensure", 3, func() error { return tb.Ensure(netA) })
			commands("Ensure again", 0, func() error { return tb.Ensure(netA) })
			commands("Ensure of ports", 1, func() error { return tb.Ensure(port) })
			commands("Ensure of ports again", 0, func() error { return tb.Ensure(port) })
			commands("DeleteOwners", 1, func() error { return tb.DeleteOwners(ContainerComment("c1")) })
			commands("DeleteOwners again", 0, func() error { return tb.DeleteOwners(ContainerComment("c1")) })
			if _, err := os.Stat(cache); err != nil {
				t.Fatalf("no cache: %v", err)
			}
		}
		// Someone deletes one of a's rules: noticed (by the next Tables, on
		// the legacy backend), and a is rewritten.
		tb = New(cache)
		r := netA[5]
		out, err := exec.Command("iptables", append([]string{"-w", "-t", r.Table, "-D", r.Chain}, r.Spec...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -D: %v\n%s", err, out)
		}
		if err := tb.Ensure(netA); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(save(t), "fockker:net:a"); n != len(netA) {
			t.Fatalf("%d rules of a after repair, want %d", n, len(netA))
		}
		// Someone adds a rule of their own: read again, nothing to change.
		tb = New(cache)
		if out, err := exec.Command("iptables", "-w", "-A", "INPUT", "-j", "ACCEPT").CombinedOutput(); err != nil {
			t.Fatalf("iptables -A: %v\n%s", err, out)
		}
		commands("Ensure after a foreign change", 1, func() error { return tb.Ensure(netA) })
		if out, err := exec.Command("iptables", "-w", "-D", "INPUT", "-j", "ACCEPT").CombinedOutput(); err != nil {
			t.Fatalf("iptables -D: %v\n%s", err, out)
		}
		if backend == backendNFT {
			// A cache saying a's rules are missing, but for another namespace,
			// is not believed.
			c, err := tb.commands()
			if err != nil {
				t.Fatal(err)
			}
			key, err := currentKey(c)
			if err != nil {
				t.Fatal(err)
			}
			foreign := *key
			foreign.NetnsCookie++
			b := encodeCache(&foreign, newRuleSet())
			if err := os.WriteFile(cache, b, 0o600); err != nil {
				t.Fatal(err)
			}
			commands("Ensure with a foreign cache", 1, func() error { return tb.Ensure(netA) })
			// Nor is a torn one (the one just written, current).
			if b, err = os.ReadFile(cache); err != nil {
				t.Fatal(err)
			}
			if decodeCache(b, key) == nil {
				t.Fatalf("the cache is not current:\n%s", b)
			}
			if err := os.WriteFile(cache, b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
			commands("Ensure with a torn cache", 1, func() error { return tb.Ensure(netA) })
		}
		if err := tb.DeleteOwners(NetworkComment("a")); err != nil {
			t.Fatal(err)
		}
		if removed, err := tb.RemoveChains(); err != nil || !removed {
			t.Fatalf("RemoveChains = %v, %v", removed, err)
		}
		if s := save(t); strings.Contains(s, "FOCKKER") || strings.Contains(s, "fockker") {
			t.Fatalf("left behind:\n%s", s)
		}
	})
}
