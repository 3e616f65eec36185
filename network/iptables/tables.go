package iptables

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Tables reads and changes the rules of the calling thread's network
// namespace. It is not safe for concurrent use, and changes made by several
// processes must be serialised by the caller (fockker holds its network
// lock), as must every use of one cache file.
//
// A Tables is meant for one operation: where no nf_tables generation tells
// whether the rules changed (the legacy backend), it trusts what it last
// read or wrote itself for as long as it lives.
type Tables struct {
	cacheFile string
	cmds      *commands // found on first use
	mem       *ruleSet  // what it last read or wrote, nil after a failure

	// Commands counts the iptables-save and iptables-restore runs, for
	// tests and diagnostics.
	Commands int
}

// New returns Tables that find iptables-save and iptables-restore in $PATH
// when first needed, and keep what they read in cacheFile ("" for no
// cache), a file of their own in a directory that exists.
func New(cacheFile string) *Tables {
	return &Tables{cacheFile: cacheFile}
}

// commands are the iptables-save and iptables-restore in use.
type commands struct {
	save, restore         string // as found in $PATH
	saveReal, restoreReal string // with symbolic links resolved
	backend               string // backendNFT, backendLegacy or "" if unknown
}

// backendOf guesses the backend of an iptables command from the name of
// the file it resolves to (xtables-nft-multi, iptables-legacy-restore, ...).
func backendOf(real string) string {
	base := filepath.Base(real)
	switch {
	case strings.Contains(base, "nft"):
		return backendNFT
	case strings.Contains(base, "legacy"):
		return backendLegacy
	}
	return ""
}

func (t *Tables) commands() (*commands, error) {
	if t.cmds != nil {
		return t.cmds, nil
	}
	c := &commands{}
	for _, x := range []struct {
		name       string
		path, real *string
	}{{"iptables-save", &c.save, &c.saveReal}, {"iptables-restore", &c.restore, &c.restoreReal}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			return nil, fmt.Errorf("iptables: %w", err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("iptables: %w", err)
		}
		*x.path, *x.real = p, real
	}
	sb, rb := backendOf(c.saveReal), backendOf(c.restoreReal)
	if sb != "" && rb != "" && sb != rb {
		return nil, fmt.Errorf("iptables: %s is %s but %s is %s: use one backend", c.save, sb, c.restore, rb)
	}
	if c.saveReal == c.restoreReal {
		c.backend = sb
	}
	t.cmds = c
	return c, nil
}

func (t *Tables) run(path string, args []string, stdin string) (string, error) {
	cmd := exec.Command(path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t.Commands++
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("iptables: %s: %w: %s", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// tx is a set of changes planned against a ruleSet and applied by one
// iptables-restore.
type tx struct {
	t     *Tables
	rs    *ruleSet   // the rules as they will be once the changes are applied
	base  *cacheKey  // where rs came from, if the cache may follow it
	lines [][]string // per table of tableOrder, the restore commands
}

// tableOrder is the order tables are written to iptables-restore.
var tableOrder = []string{tableNAT, tableFilter}

// begin reads the rules: from the cache if the ruleset has not changed
// since it was written, otherwise with iptables-save.
func (t *Tables) begin() (*tx, error) {
	c, err := t.commands()
	if err != nil {
		return nil, err
	}
	var key *cacheKey
	if t.cacheFile != "" && c.backend == backendNFT {
		// Without a generation (an old kernel, say) there is no cache.
		key, _ = currentKey(c)
	}
	if key != nil {
		if rs := t.readCache(key); rs != nil {
			return &tx{t: t, rs: rs, base: key, lines: make([][]string, len(tableOrder))}, nil
		}
	} else if t.mem != nil {
		return &tx{t: t, rs: t.mem.clone(), lines: make([][]string, len(tableOrder))}, nil
	}
	rs, base, err := t.read(c, key)
	if err != nil {
		return nil, err
	}
	t.mem = rs.clone()
	return &tx{t: t, rs: rs, base: base, lines: make([][]string, len(tableOrder))}, nil
}

// read runs iptables-save. If key, the ruleset's key taken just before, is
// still current afterwards, nothing was committed meanwhile: what was read
// is the ruleset of key, and it is cached.
func (t *Tables) read(c *commands, key *cacheKey) (*ruleSet, *cacheKey, error) {
	out, err := t.run(c.save, nil, "")
	if err != nil {
		return nil, nil, err
	}
	rs, err := parseSave(out)
	if err != nil {
		return nil, nil, err
	}
	if key == nil || (rs.Backend != "" && rs.Backend != backendNFT) {
		return rs, nil, nil
	}
	if gen, err := nftGeneration(); err != nil || gen != key.Generation {
		return rs, nil, nil
	}
	if err := t.writeCache(key, rs); err != nil {
		return nil, nil, err
	}
	return rs, key, nil
}

// update reads the rules, lets plan plan changes, and applies them.
func (t *Tables) update(plan func(*tx) error) error {
	x, err := t.begin()
	if err != nil {
		return err
	}
	if err := plan(x); err != nil {
		return err
	}
	return x.commit()
}

// pending reports whether any change is planned.
func (x *tx) pending() bool {
	return slices.ContainsFunc(x.lines, func(l []string) bool { return len(l) > 0 })
}

// script returns the input for iptables-restore.
func (x *tx) script() string {
	var b strings.Builder
	for i, lines := range x.lines {
		if len(lines) == 0 {
			continue
		}
		b.WriteString("*" + tableOrder[i] + "\n")
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// commit applies the planned changes, if any, with one iptables-restore.
// Each table changes atomically. When one table changed and the
// generation moved by exactly one, nobody else committed in between and
// the cache follows. After a change of both tables (a network created or
// repaired, the chains removed), which moves the generation by two, the
// rules are read again, so that the cache stays current after every change
// of ours.
func (x *tx) commit() error {
	if !x.pending() {
		return nil
	}
	c, err := x.t.commands()
	if err != nil {
		return err
	}
	tables := 0
	for _, l := range x.lines {
		if len(l) > 0 {
			tables++
		}
	}
	script := x.script()
	base := x.base
	x.lines, x.base = make([][]string, len(tableOrder)), nil
	if _, err := x.t.run(c.restore, []string{"--noflush", "--wait"}, script); err != nil {
		// A table may have changed, or not: read again next time.
		x.t.mem = nil
		return withFailedLine(err, script)
	}
	x.t.mem = x.rs.clone()
	if x.t.cacheFile == "" || c.backend != backendNFT {
		return nil
	}
	key, err := currentKey(c)
	if err != nil {
		return nil // no generation, no cache
	}
	if base != nil && tables == 1 && key.Generation == base.Generation+1 {
		if err := x.t.writeCache(key, x.rs); err != nil {
			return err
		}
		x.base = key
		return nil
	}
	rs, base, err := x.t.read(c, key)
	if err != nil {
		return err
	}
	x.rs, x.base, x.t.mem = rs, base, rs.clone()
	return nil
}

// failedLine returns N of the first "line N failed" in msg, as
// iptables-restore reports the input line it stopped at, or 0.
func failedLine(msg string) int {
	for {
		i := strings.Index(msg, "line ")
		if i < 0 {
			return 0
		}
		msg = msg[i+len("line "):]
		digits := 0
		for digits < len(msg) && '0' <= msg[digits] && msg[digits] <= '9' {
			digits++
		}
		if digits > 0 && strings.HasPrefix(msg[digits:], " failed") {
			n, _ := strconv.Atoi(msg[:digits])
			return n
		}
	}
}

// withFailedLine adds to an error of iptables-restore the input line it
// names.
func withFailedLine(err error, script string) error {
	n := failedLine(err.Error())
	if n == 0 {
		return err
	}
	lines := strings.Split(script, "\n")
	if n < 1 || n > len(lines) {
		return err
	}
	return fmt.Errorf("%w (line %d: %s)", err, n, lines[n-1])
}

func tableIndex(name string) (int, error) {
	if i := slices.Index(tableOrder, name); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("iptables: table %q is not one of ours", name)
}

// emit plans one restore command in table.
func (x *tx) emit(tableName string, words ...string) error {
	i, err := tableIndex(tableName)
	if err != nil {
		return err
	}
	if err := checkWords(words); err != nil {
		return err
	}
	x.lines[i] = append(x.lines[i], strings.Join(words, " "))
	return nil
}

func (x *tx) newChain(tableName, name string) error {
	if err := x.emit(tableName, "-N", name); err != nil {
		return err
	}
	t := x.rs.table(tableName)
	t.Chains = append(t.Chains, name)
	return nil
}

func (x *tx) appendRule(r Rule) error {
	if err := x.emit(r.Table, append([]string{"-A", r.Chain}, r.Spec...)...); err != nil {
		return err
	}
	t := x.rs.table(r.Table)
	t.Rules[r.Chain] = append(t.Rules[r.Chain], normalize(r.Spec))
	return nil
}

func (x *tx) insertFirst(r Rule) error {
	if err := x.emit(r.Table, append([]string{"-I", r.Chain, "1"}, r.Spec...)...); err != nil {
		return err
	}
	t := x.rs.table(r.Table)
	t.Rules[r.Chain] = slices.Insert(t.Rules[r.Chain], 0, normalize(r.Spec))
	return nil
}

// deleteRule deletes a rule as it was read. "-D" deletes the first rule
// equal to it, so the first equal one goes from the ruleSet too.
func (x *tx) deleteRule(tableName, chain string, spec []string) error {
	if err := x.emit(tableName, append([]string{"-D", chain}, spec...)...); err != nil {
		return err
	}
	t := x.rs.table(tableName)
	rules := t.Rules[chain]
	if i := slices.IndexFunc(rules, func(r []string) bool { return slices.Equal(r, spec) }); i >= 0 {
		t.Rules[chain] = slices.Delete(rules, i, i+1)
	}
	if len(t.Rules[chain]) == 0 {
		delete(t.Rules, chain)
	}
	return nil
}

func (x *tx) flushChain(tableName, name string) error {
	if err := x.emit(tableName, "-F", name); err != nil {
		return err
	}
	delete(x.rs.table(tableName).Rules, name)
	return nil
}

func (x *tx) deleteChain(tableName, name string) error {
	if err := x.emit(tableName, "-X", name); err != nil {
		return err
	}
	t := x.rs.table(tableName)
	t.Chains = slices.DeleteFunc(t.Chains, func(c string) bool { return c == name })
	delete(t.Rules, name)
	return nil
}

// ensureChains plans our chains and the jumps to them, where missing.
func (x *tx) ensureChains() error {
	for _, c := range chains() {
		if !x.rs.table(c.table).hasChain(c.name) {
			if err := x.newChain(c.table, c.name); err != nil {
				return err
			}
		}
		if c.name == ChainForward {
			if err := x.ensureJump(isolationJump()); err != nil {
				return err
			}
		}
		if c.from != "" {
			if err := x.ensureJump(Rule{c.table, c.from, c.jump()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureJump makes jump the only rule of its chain carrying the jump
// comment, inserting it first if it is missing.
func (x *tx) ensureJump(jump Rule) error {
	found := false
	var stale [][]string
	for _, r := range x.rs.table(jump.Table).Rules[jump.Chain] {
		if ownerOf(r) != commentJump {
			continue
		}
		if !found && sameRule(r, jump.Spec) {
			found = true
			continue
		}
		stale = append(stale, r)
	}
	for _, r := range stale {
		if err := x.deleteRule(jump.Table, jump.Chain, r); err != nil {
			return err
		}
	}
	if !found {
		return x.insertFirst(jump)
	}
	return nil
}

type chainKey struct{ table, chain string }

// owned returns, per chain, the rules carrying one of owners, in order.
func (x *tx) owned(owners []string) map[chainKey][][]string {
	out := map[chainKey][][]string{}
	for tn, t := range x.rs.Tables {
		for cn, rules := range t.Rules {
			for _, r := range rules {
				if slices.Contains(owners, ownerOf(r)) {
					k := chainKey{tn, cn}
					out[k] = append(out[k], r)
				}
			}
		}
	}
	return out
}

// ensure plans rules as the complete set of rules of their owners.
func (x *tx) ensure(rules []Rule) error {
	for _, r := range rules {
		if !strings.HasPrefix(r.Owner(), commentPrefix) {
			return fmt.Errorf("iptables: %s: %w", r, ErrNoOwner)
		}
	}
	owners := Owners(rules)
	have := x.owned(owners)
	want := map[chainKey][][]string{}
	for _, r := range rules {
		k := chainKey{r.Table, r.Chain}
		want[k] = append(want[k], r.Spec)
	}
	same := len(have) == len(want)
	for k, w := range want {
		if !same {
			break
		}
		same = slices.EqualFunc(have[k], w, sameRule)
	}
	if same {
		return nil
	}
	if err := x.deleteOwned(have); err != nil {
		return err
	}
	for _, r := range rules {
		if !x.rs.table(r.Table).hasChain(r.Chain) && !slices.Contains(builtinChains, r.Chain) {
			return fmt.Errorf("iptables: %s: chain %s/%s does not exist", r, r.Table, r.Chain)
		}
		if err := x.appendRule(r); err != nil {
			return err
		}
	}
	return nil
}

// deleteOwned plans the deletion of rules as listed by owned, in a fixed
// order.
func (x *tx) deleteOwned(rules map[chainKey][][]string) error {
	keys := make([]chainKey, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b chainKey) int {
		return strings.Compare(a.table+"/"+a.chain, b.table+"/"+b.chain)
	})
	for _, k := range keys {
		for _, r := range rules[k] {
			if err := x.deleteRule(k.table, k.chain, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *tx) deleteOwners(owners []string) error {
	return x.deleteOwned(x.owned(owners))
}

// delete plans the deletion of each of rules that is present.
func (x *tx) delete(rules []Rule) error {
	for _, r := range rules {
		for _, have := range x.rs.table(r.Table).Rules[r.Chain] {
			if sameRule(have, r.Spec) {
				if err := x.deleteRule(r.Table, r.Chain, have); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// removeChains plans the removal of our jumps and chains if no chain holds
// anything but the isolation jump, and reports whether it did.
func (x *tx) removeChains() (bool, error) {
	all := chains()
	for _, c := range all {
		for _, r := range x.rs.table(c.table).Rules[c.name] {
			if c.name == ChainForward && ownerOf(r) == commentJump {
				continue
			}
			return false, nil
		}
	}
	// A jump can only exist while its target does: jumps first, then every
	// chain is flushed, then deleted.
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		if c.from == "" {
			continue
		}
		for _, r := range slices.Clone(x.rs.table(c.table).Rules[c.from]) {
			if ownerOf(r) == commentJump {
				if err := x.deleteRule(c.table, c.from, r); err != nil {
					return false, err
				}
			}
		}
	}
	var ours []chain
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		if x.rs.table(c.table).hasChain(c.name) && !slices.ContainsFunc(ours, func(o chain) bool { return o.table == c.table && o.name == c.name }) {
			ours = append(ours, c)
		}
	}
	for _, c := range ours {
		if len(x.rs.table(c.table).Rules[c.name]) > 0 {
			if err := x.flushChain(c.table, c.name); err != nil {
				return false, err
			}
		}
	}
	for _, c := range ours {
		if err := x.deleteChain(c.table, c.name); err != nil {
			return false, err
		}
	}
	return true, nil
}
