// Package iptables installs and removes the packet-filter and NAT rules of
// fockker networks and port mappings.
//
// Every rule carries a "fockker:..." comment naming its owner (a network, a
// container, or "fockker:jump" for the jumps into our chains). Rules live in
// fockker's own chains, reached by one jump from each built-in chain:
//
//	nat    PREROUTING, OUTPUT (dst-type LOCAL) -> FOCKKER              DNAT of published ports
//	nat    POSTROUTING                         -> FOCKKER-POSTROUTING  masquerade
//	filter FORWARD                             -> FOCKKER-FORWARD      -> FOCKKER-ISOLATION-STAGE-1/-2
//	filter INPUT                               -> FOCKKER-INPUT        localnet guard
//
// The tables are read with one run of iptables-save and changed with one
// run of "iptables-restore --noflush": each change is planned in Go against
// what was read, and only what is missing or wrong is written, so adding a
// group of rules that is already there runs no command that changes
// anything. A group (all the rules of one owner) is the unit: if any rule of
// it is missing, out of order or altered, the whole group is rewritten, and
// removing an owner removes every rule carrying its comment.
//
// With the nf_tables backend, the ruleset's generation number (one netlink
// request) tells whether anything changed since the rules were last read:
// Tables made with a cache file keep what they read there, and while the
// generation stays the same they use it instead of running iptables-save.
//
// Commands run in the network namespace of the calling thread. Both the
// nf_tables and the legacy backend work: whichever iptables-save and
// iptables-restore are first in $PATH are used, and they must be of the
// same backend.
package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
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

	chainPrefix   = "FOCKKER"  // every chain of ours starts with it
	commentPrefix = "fockker:" // every comment of ours starts with it
	commentJump   = "fockker:jump"
	localnet      = "127.0.0.0/8"
)

// Rule is one rule: its table, chain and specification (matches and target,
// comment included).
type Rule struct {
	Table string
	Chain string
	Spec  []string
}

func (r Rule) String() string { return fmt.Sprintf("-t %s -A %s %q", r.Table, r.Chain, r.Spec) }

// Owner returns the rule's comment, which names its owner, or "".
func (r Rule) Owner() string { return ownerOf(r.Spec) }

// ErrNoOwner means a rule given to Ensure carries no owner comment.
var ErrNoOwner = errors.New("rule has no owner comment")

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

// NetworkComment is the comment carried by the rules of network name.
func NetworkComment(name string) string { return commentPrefix + "net:" + name }

// ContainerComment is the comment carried by the rules of container id.
func ContainerComment(id string) string { return commentPrefix + "ctr:" + id }

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
//
// Specifications are written the way iptables-save prints them, so that
// what was read compares equal to what is wanted.
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
		{tableFilter, ChainInput, spec([]string{"-d", localnet}, in, []string{"-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED"}, c, []string{"-j", "DROP"})},
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

// Owners returns the distinct owner comments of rules, in order.
func Owners(rules []Rule) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rules {
		if o := r.Owner(); o != "" && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// EnsureChains creates our chains and the jumps to them, each only if
// missing. Jumps are inserted first in the built-in chains.
func (t *Tables) EnsureChains() error {
	return t.update(func(tx *tx) error { return tx.ensureChains() })
}

// Ensure makes sure our chains and jumps exist and that rules are present,
// in this order, at the end of their chains, as the complete set of rules
// of their owners: if they all are, nothing is changed; otherwise every
// rule of those owners is deleted and rules are appended, in one
// transaction. On failure no rule of those owners is left.
func (t *Tables) Ensure(rules []Rule) error {
	err := t.update(func(tx *tx) error {
		if err := tx.ensureChains(); err != nil {
			return err
		}
		return tx.ensure(rules)
	})
	if err != nil && !errors.Is(err, ErrNoOwner) {
		return errors.Join(err, t.DeleteOwners(Owners(rules)...))
	}
	return err
}

// Delete removes each of rules that is present; a missing rule or chain is
// success.
func (t *Tables) Delete(rules []Rule) error {
	return t.update(func(tx *tx) error { return tx.delete(rules) })
}

// DeleteOwners removes every rule carrying one of comments, in the nat and
// filter tables; finding none is success.
func (t *Tables) DeleteOwners(comments ...string) error {
	if len(comments) == 0 {
		return nil
	}
	return t.update(func(tx *tx) error { return tx.deleteOwners(comments) })
}

// RemoveChains deletes the jumps and our chains if every chain holds
// nothing but our own isolation jump, and reports whether they are gone;
// otherwise it leaves them. Missing chains and jumps are not an error.
func (t *Tables) RemoveChains() (bool, error) {
	var removed bool
	err := t.update(func(tx *tx) (err error) {
		removed, err = tx.removeChains()
		return err
	})
	return removed && err == nil, err
}
