package security

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
)

func TestNormalizeCap(t *testing.T) {
	for in, want := range map[string]string{
		"CAP_NET_ADMIN": "CAP_NET_ADMIN", "net_admin": "CAP_NET_ADMIN", "Net_Admin": "CAP_NET_ADMIN",
		"cap_sys_admin": "CAP_SYS_ADMIN", "all": "ALL", "ALL": "ALL", " chown ": "CAP_CHOWN",
		"checkpoint_restore": "CAP_CHECKPOINT_RESTORE",
	} {
		if got, err := NormalizeCap(in); err != nil || got != want {
			t.Errorf("NormalizeCap(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "CAP_", "CAP_ALL", "sys_admins", "cap_cap_chown", "42", "CAP_NET_ADMIN,CAP_CHOWN"} {
		if got, err := NormalizeCap(bad); !errors.Is(err, ErrInvalidCapability) {
			t.Errorf("NormalizeCap(%q) = %q, %v; want ErrInvalidCapability", bad, got, err)
		}
	}
	got, err := NormalizeCaps([]string{"chown", "CAP_CHOWN", "kill"})
	if err != nil || !reflect.DeepEqual(got, []string{"CAP_CHOWN", "CAP_KILL"}) {
		t.Errorf("NormalizeCaps: %q, %v", got, err)
	}
}

// TestCapNames checks the canonical names both ways, for every capability known.
func TestCapNames(t *testing.T) {
	for _, c := range capability.ListKnown() {
		name := capName(c)
		if want := "CAP_" + strings.ToUpper(c.String()); name != want {
			t.Errorf("capName(%d) = %q, want %q", c, name, want)
		}
		if got, ok := capByName(name); !ok || got != c {
			t.Errorf("capByName(%q) = %d, %v; want %d", name, got, ok, c)
		}
	}
	for _, bad := range []string{"", "CAP_", "CAP_net_admin", "cap_NET_ADMIN", "NET_ADMIN", "CAP_NET_ADMINS", "CAP_NET_ADMI", "CAP_NET-ADMIN", "CAP_UNKNOWN", "ALL"} {
		if c, ok := capByName(bad); ok {
			t.Errorf("capByName(%q) = %d, want none", bad, c)
		}
	}
}

func TestDefaultMask(t *testing.T) {
	m, err := CapMask(DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	// CapEff of a docker container, as /proc/self/status shows it.
	if m != 0xa80425fb {
		t.Errorf("default mask %#x, want 0xa80425fb", m)
	}
	if got := capNames(m); len(got) != 14 {
		t.Errorf("capNames: %q", got)
	}
}

func TestTweakCapabilities(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}
	defaults := []string{"CAP_CHOWN", "CAP_KILL"}
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
	}{
		{"defaults", nil, nil, false, defaults},
		{"add", []string{"CAP_SYS_ADMIN"}, nil, false, []string{"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"}},
		{"add a default again", []string{"CAP_KILL"}, nil, false, defaults},
		{"drop", nil, []string{"CAP_CHOWN"}, false, []string{"CAP_KILL"}},
		{"drop all", nil, []string{"ALL"}, false, []string{}},
		{"drop all, add one", []string{"CAP_NET_ADMIN"}, []string{"ALL"}, false, []string{"CAP_NET_ADMIN"}},
		{"add all", []string{"ALL"}, nil, false, all},
		{"add all, drop one", []string{"ALL"}, []string{"CAP_SYS_ADMIN"}, false, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}},
		{"add all wins over drop all", []string{"ALL"}, []string{"ALL"}, false, all},
		{"privileged ignores drop", nil, []string{"ALL"}, true, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tweakCapabilities(defaults, all, tc.add, tc.drop, tc.privileged)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCapSetsFor(t *testing.T) {
	if got := CapSetsFor(0xff, 0); got != (CapSets{Bounding: 0xff, Effective: 0xff, Permitted: 0xff}) {
		t.Errorf("root: %+v", got)
	}
	if got := CapSetsFor(0xff, 1000); got != (CapSets{Bounding: 0xff}) {
		t.Errorf("user: %+v", got)
	}
}

func TestParseSecurityOpt(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "p.json")
	if err := os.WriteFile(profile, []byte("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opt  string
		want Options
	}{
		{"no-new-privileges", Options{NoNewPrivileges: true}},
		{"no-new-privileges=true", Options{NoNewPrivileges: true}},
		{"no-new-privileges:true", Options{NoNewPrivileges: true}},
		{"no-new-privileges=false", Options{}},
		{"seccomp=unconfined", Options{Seccomp: SeccompUnconfined}},
		{"seccomp=builtin", Options{}},
		{"seccomp=" + profile, Options{Seccomp: `{"defaultAction":"SCMP_ACT_ALLOW"}`}},
	} {
		var o Options
		err := o.parseSecurityOpt(tc.opt, readProfile)
		if parsed := o.profile != nil; parsed != strings.HasPrefix(tc.opt, "seccomp="+dir) {
			t.Errorf("%q: profile kept parsed: %v", tc.opt, parsed)
		}
		o.profile = nil
		if err != nil || !reflect.DeepEqual(o, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.opt, o, err, tc.want)
		}
	}
	// A later seccomp= replaces the profile read before.
	for _, last := range []string{"seccomp=unconfined", "seccomp=builtin"} {
		var o Options
		if err := o.parseSecurityOpt("seccomp="+profile, readProfile); err != nil {
			t.Fatal(err)
		}
		if err := o.parseSecurityOpt(last, readProfile); err != nil || o.profile != nil {
			t.Errorf("profile, then %s: %+v, %v", last, o, err)
		}
	}
	notJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(notJSON, []byte("defaultAction: SCMP_ACT_ALLOW"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "no-new-privileges=maybe", "seccomp=", "seccomp", "apparmor=unconfined",
		"label=disable", "nonsense=1", "seccomp=" + filepath.Join(dir, "missing.json"), "seccomp=" + notJSON} {
		var o Options
		if err := o.parseSecurityOpt(bad, readProfile); !errors.Is(err, ErrInvalidSecurityOpt) {
			t.Errorf("%q: %v, want ErrInvalidSecurityOpt", bad, err)
		}
	}
}

// TestParseFlagsProfile: ParseFlags compiles a profile file's profile as parsed once; the
// result is what compiling the stored JSON gives (as exec does).
func TestParseFlagsProfile(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "p.json")
	js := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":1,"op":"SCMP_CMP_EQ"}]}]}`
	if err := os.WriteFile(profile, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := ParseFlags(Flags{CapDrop: []string{"ALL"}, SecurityOpt: []string{"seccomp=" + profile}})
	if err != nil {
		t.Fatal(err)
	}
	if o.Seccomp != js || o.profile != nil || o.compiled == nil || o.compiled.Seccomp == nil {
		t.Fatalf("got %+v", o)
	}
	stored := Options{CapDrop: o.CapDrop, Seccomp: o.Seccomp}
	again, err := stored.Process()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.compiled, again) {
		t.Errorf("ParseFlags compiled %+v, the stored options %+v", o.compiled, again)
	}
}

func TestProcess(t *testing.T) {
	supported := []string{}
	for i := 0; i <= 40; i++ {
		supported = append(supported, capNames(1<<uint(i))...)
	}
	held := uint64(1<<41-1) &^ (1 << 24) // everything but CAP_SYS_RESOURCE
	p, err := Options{}.process(held, supported)
	if err != nil {
		t.Fatal(err)
	}
	if p.Caps != 0xa80425fb || p.Seccomp == nil || p.Privileged {
		t.Errorf("defaults: caps %#x, seccomp %v", p.Caps, p.Seccomp != nil)
	}
	p, err = Options{Privileged: true, Seccomp: `{"defaultAction":"SCMP_ACT_ERRNO"}`}.process(held, supported)
	if err != nil {
		t.Fatal(err)
	}
	if p.Caps != held || p.Seccomp != nil {
		t.Errorf("privileged: caps %#x, seccomp %v", p.Caps, p.Seccomp != nil)
	}
	if p, err = (Options{Seccomp: SeccompUnconfined, CapDrop: []string{"ALL"}}).process(held, supported); err != nil || p.Caps != 0 || p.Seccomp != nil {
		t.Errorf("unconfined, no caps: %+v, %v", p, err)
	}
	_, err = Options{CapAdd: []string{"CAP_SYS_RESOURCE"}}.process(held, supported)
	if !errors.Is(err, ErrCapabilityNotHeld) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Errorf("a capability fockker lacks: %v", err)
	}
	if _, err = (Options{Seccomp: `{"defaultAction":"SCMP_ACT_NOTIFY"}`}).process(held, supported); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("bad stored profile: %v", err)
	}
}

// TestProcessAllCaps: Process lists the kernel's capabilities only for --privileged and
// --cap-add ALL; both still get every one (of those fockker holds, for --privileged).
func TestProcessAllCaps(t *testing.T) {
	held, err := ownPermitted()
	if err != nil {
		t.Fatal(err)
	}
	supported, err := SupportedCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	all, err := CapMask(supported)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Options{Privileged: true}.Process()
	if err != nil || p.Caps != all&held {
		t.Fatalf("privileged: %+v, %v; want caps %#x", p, err, all&held)
	}
	// --cap-add ALL, without what fockker does not hold (it could not give those).
	o := Options{CapAdd: []string{allCaps}, CapDrop: capNames(all &^ held), Seccomp: SeccompUnconfined}
	if p, err = o.Process(); err != nil || p.Caps != all&held {
		t.Fatalf("--cap-add ALL: %+v, %v; want caps %#x", p, err, all&held)
	}
}
