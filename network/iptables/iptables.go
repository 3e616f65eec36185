// Package iptables installs and removes the packet-filter and NAT rules of
// fockker networks and port mappings through the iptables command.
//
// Every rule carries a "fockker:..." comment naming its owner, is added only
// if it is not already there, and is removed by its exact specification.
// Rules live in fockker's own chains, reached by one jump from each
// built-in chain:
//
//	nat    PREROUTING, OUTPUT (dst-type LOCAL) -> FOCKKER              DNAT of published ports
//	nat    POSTROUTING                         -> FOCKKER-POSTROUTING  masquerade
//	filter FORWARD                             -> FOCKKER-FORWARD      -> FOCKKER-ISOLATION-STAGE-1/-2
//	filter INPUT                               -> FOCKKER-INPUT        localnet guard
//
// Commands run in the network namespace of the calling thread. Both the
// nf_tables and the legacy backend of iptables work: whichever "iptables"
// is first in $PATH is used.
package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	goiptables "github.com/coreos/go-iptables/iptables"
)

// Chain names.
const (
	ChainDNAT        = "FOCKKER"
	ChainPostrouting = "FOCKKER-POSTROUTING"
	ChainForward     = "FOCKKER-FORWARD"
	ChainIsolation1  = "FOCKKER-ISOLATION-STAGE-1"
	ChainIsolation2  = "FOCKKER-ISOLATION-STAGE-2"
	ChainInput       = "FOCKKER-INPUT"
)

const (
	tableNAT    = "nat"
	tableFilter = "filter"

	commentJump = "fockker:jump"
	localnet    = "127.0.0.0/8"
)

// Rule is one rule: its table, chain and specification (matches and target,
// comment included).
type Rule struct {
	Table string
	Chain string
	Spec  []string
}

func (r Rule) String() string { return fmt.Sprintf("-t %s -A %s %q", r.Table, r.Chain, r.Spec) }

// Tables runs iptables commands.
type Tables struct {
	ipt *goiptables.IPTables
}

// New finds the iptables command in $PATH.
func New() (*Tables, error) {
	ipt, err := goiptables.New()
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &Tables{ipt: ipt}, nil
}

// chain is one of our chains and where it is jumped to from.
type chain struct {
	table, name string
	from        string   // chain holding the jump
	match       []string // extra matches of the jump
}

// chains lists our chains in creation order: a chain is created before
// anything jumps to it.
func chains() []chain {
	return []chain{
		{tableNAT, ChainDNAT, "PREROUTING", []string{"-m", "addrtype", "--dst-type", "LOCAL"}},
		{tableNAT, ChainDNAT, "OUTPUT", []string{"-m", "addrtype", "--dst-type", "LOCAL"}},
		{tableNAT, ChainPostrouting, "POSTROUTING", nil},
		{tableFilter, ChainIsolation2, "", nil},
		{tableFilter, ChainIsolation1, "", nil},
		{tableFilter, ChainForward, "FORWARD", nil},
		{tableFilter, ChainInput, "INPUT", nil},
	}
}

func (c chain) jump() []string {
	spec := append([]string{}, c.match...)
	return append(spec, "-m", "comment", "--comment", commentJump, "-j", c.name)
}

// isolationJump is the first rule of FOCKKER-FORWARD, so isolation is
// decided before any accept.
func isolationJump() Rule {
	return Rule{tableFilter, ChainForward, []string{"-m", "comment", "--comment", commentJump, "-j", ChainIsolation1}}
}

// EnsureChains creates our chains and the jumps to them, each only if
// missing. Jumps are inserted first in the built-in chains.
func (t *Tables) EnsureChains() error {
	for _, c := range chains() {
		exists, err := t.ipt.ChainExists(c.table, c.name)
		if err != nil {
			return fmt.Errorf("iptables: check chain %s/%s: %w", c.table, c.name, err)
		}
		if !exists {
			if err := t.ipt.NewChain(c.table, c.name); err != nil {
				return fmt.Errorf("iptables: create chain %s/%s: %w", c.table, c.name, err)
			}
		}
		if c.name == ChainForward {
			if err := t.insertFirst(isolationJump()); err != nil {
				return err
			}
		}
		if c.from != "" {
			if err := t.insertFirst(Rule{c.table, c.from, c.jump()}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Tables) insertFirst(r Rule) error {
	exists, err := t.ipt.Exists(r.Table, r.Chain, r.Spec...)
	if err != nil {
		return fmt.Errorf("iptables: check %s: %w", r, err)
	}
	if exists {
		return nil
	}
	if err := t.ipt.Insert(r.Table, r.Chain, 1, r.Spec...); err != nil {
		return fmt.Errorf("iptables: insert %s: %w", r, err)
	}
	return nil
}

// RemoveChains deletes the jumps and our chains if every chain holds
// nothing but our own isolation jump; otherwise it leaves them and reports
// whether they were removed. Missing chains and jumps are not an error.
func (t *Tables) RemoveChains() (bool, error) {
	all := chains()
	existing := map[string]bool{}
	for _, c := range all {
		key := c.table + "/" + c.name
		if _, done := existing[key]; done {
			continue
		}
		exists, err := t.ipt.ChainExists(c.table, c.name)
		if err != nil {
			return false, fmt.Errorf("iptables: check chain %s: %w", key, err)
		}
		existing[key] = exists
		if !exists {
			continue
		}
		rules, err := t.ipt.List(c.table, c.name)
		if err != nil {
			return false, fmt.Errorf("iptables: list chain %s: %w", key, err)
		}
		// The listing starts with "-N CHAIN"; FOCKKER-FORWARD also holds the
		// isolation jump.
		allowed := 1
		if c.name == ChainForward {
			allowed = 2
		}
		if len(rules) > allowed {
			return false, nil
		}
	}
	// A jump can only exist while its target does.
	var errs []error
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		if c.from == "" || !existing[c.table+"/"+c.name] {
			continue
		}
		if err := t.ipt.DeleteIfExists(c.table, c.from, c.jump()...); err != nil {
			errs = append(errs, fmt.Errorf("iptables: delete jump %s -> %s: %w", c.from, c.name, err))
		}
	}
	if len(errs) > 0 {
		return false, errors.Join(errs...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		key := c.table + "/" + c.name
		if !existing[key] {
			continue
		}
		existing[key] = false
		if err := t.ipt.ClearAndDeleteChain(c.table, c.name); err != nil {
			errs = append(errs, fmt.Errorf("iptables: delete chain %s: %w", key, err))
		}
	}
	if len(errs) > 0 {
		return false, errors.Join(errs...)
	}
	return true, nil
}

// Ensure makes sure rules are present, in this order, at the end of their
// chains. If all are present it does nothing; otherwise it deletes those
// present and appends all, so order within the group holds even after
// someone deleted one of them. On failure no rule of the group is left.
func (t *Tables) Ensure(rules []Rule) (retErr error) {
	missing := false
	for _, r := range rules {
		ok, err := t.Exists(r)
		if err != nil {
			return fmt.Errorf("iptables: check %s: %w", r, err)
		}
		if !ok {
			missing = true
			break
		}
	}
	if !missing {
		return nil
	}
	if err := t.Delete(rules); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, t.Delete(rules))
		}
	}()
	for _, r := range rules {
		if err := t.ipt.Append(r.Table, r.Chain, r.Spec...); err != nil {
			return fmt.Errorf("iptables: append %s: %w", r, err)
		}
	}
	return nil
}

// Delete removes each rule that is present; a missing rule or chain is
// success. It tries every rule and returns all errors.
func (t *Tables) Delete(rules []Rule) error {
	var errs []error
	for _, r := range rules {
		exists, err := t.ipt.ChainExists(r.Table, r.Chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables: check chain %s/%s: %w", r.Table, r.Chain, err))
			continue
		}
		if !exists {
			continue
		}
		if err := t.ipt.DeleteIfExists(r.Table, r.Chain, r.Spec...); err != nil {
			errs = append(errs, fmt.Errorf("iptables: delete %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// Exists reports whether r is present.
func (t *Tables) Exists(r Rule) (bool, error) {
	ok, err := t.ipt.ChainExists(r.Table, r.Chain)
	if err != nil || !ok {
		return false, err
	}
	return t.ipt.Exists(r.Table, r.Chain, r.Spec...)
}

// NetworkComment is the comment carried by the rules of network name.
func NetworkComment(name string) string { return "fockker:net:" + name }

// ContainerComment is the comment carried by the rules of container id.
func ContainerComment(id string) string { return "fockker:ctr:" + id }

func comment(c string) []string { return []string{"-m", "comment", "--comment", c} }

func spec(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// NetworkRules returns the rules of the network called name, whose bridge
// is bridge and subnet subnet:
//
//   - masquerade of traffic from the subnet leaving by another interface;
//   - masquerade of hairpin traffic (a container reaching a published port
//     of its own network through a host address), so replies come back
//     through the host whether or not bridged traffic is seen by iptables;
//   - masquerade of host traffic from 127.0.0.0/8 DNATed to a container;
//   - isolation: traffic from this bridge to another fockker bridge, and
//     from another fockker bridge to this one, is dropped;
//   - forwarding: within the bridge, out of the bridge, replies and
//     published ports into the bridge are accepted; anything else routed
//     into the bridge is dropped;
//   - a guard dropping new connections from the bridge to 127.0.0.0/8,
//     needed because route_localnet is set on the bridge for localhost port
//     mappings.
func NetworkRules(name, bridge string, subnet netip.Prefix) []Rule {
	c := comment(NetworkComment(name))
	src := []string{"-s", subnet.String()}
	in := []string{"-i", bridge}
	out := []string{"-o", bridge}
	notOut := []string{"!", "-o", bridge}
	ct := func(states string) []string { return []string{"-m", "conntrack", "--ctstate", states} }
	return []Rule{
		{tableNAT, ChainPostrouting, spec(src, notOut, c, []string{"-j", "MASQUERADE"})},
		{tableNAT, ChainPostrouting, spec(src, out, ct("DNAT"), c, []string{"-j", "MASQUERADE"})},
		{tableNAT, ChainPostrouting, spec([]string{"-s", localnet}, out, c, []string{"-j", "MASQUERADE"})},
		{tableFilter, ChainIsolation1, spec(in, notOut, c, []string{"-j", ChainIsolation2})},
		{tableFilter, ChainIsolation2, spec(out, c, []string{"-j", "DROP"})},
		{tableFilter, ChainForward, spec(in, out, c, []string{"-j", "ACCEPT"})},
		{tableFilter, ChainForward, spec(in, notOut, c, []string{"-j", "ACCEPT"})},
		{tableFilter, ChainForward, spec(out, ct("RELATED,ESTABLISHED"), c, []string{"-j", "ACCEPT"})},
		{tableFilter, ChainForward, spec(out, ct("DNAT"), c, []string{"-j", "ACCEPT"})},
		{tableFilter, ChainForward, spec(out, c, []string{"-j", "DROP"})},
		{tableFilter, ChainInput, spec(in, []string{"-d", localnet}, []string{"-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED"}, c, []string{"-j", "DROP"})},
	}
}

// PortRule returns the DNAT rule of container id sending proto ("tcp" or
// "udp") traffic for hostPort on any local address to dst.
func PortRule(id, proto string, hostPort uint16, dst netip.AddrPort) Rule {
	return Rule{tableNAT, ChainDNAT, spec(
		[]string{"-p", proto, "-m", proto, "--dport", strconv.Itoa(int(hostPort))},
		comment(ContainerComment(id)),
		[]string{"-j", "DNAT", "--to-destination", dst.String()},
	)}
}
