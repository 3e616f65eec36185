package container

import (
	"strconv"

	"github.com/FishingRodd/fockker/container/security"
	"github.com/FishingRodd/fockker/internal/jsonstr"
	"github.com/FishingRodd/fockker/network"
)

// marshalRecord returns what json.MarshalIndent(rec, "", "  ") returns, written out by hand:
// encoding/json builds its encoders for the record's types by reflection in every new
// process, ~0.4 ms of CPU and the heap pages that touches, on the path of every run. Strings
// that need escaping are still left to encoding/json. recordjson_test.go checks the output
// against encoding/json's on random records; a field added to Record, Spec or a type they hold
// must be added here too (the test fails until it is).
func marshalRecord(rec *Record) []byte {
	w := &jsonWriter{b: make([]byte, 0, 1024)}
	w.open('{')
	w.str("id", rec.ID)
	w.str("name", rec.Name)
	w.int("pid", int64(rec.Pid))
	w.strings("command", rec.Command)
	w.str("createTime", rec.CreateTime)
	w.str("status", string(rec.Status))
	w.strings("volume", rec.Volume)
	w.strings("portmapping", rec.PortMapping)
	w.str("networkname", rec.NetworkName)
	if rec.StartTime != 0 {
		w.uint("startTime", rec.StartTime)
	}
	if rec.WatcherPid != 0 {
		w.int("watcherPid", int64(rec.WatcherPid))
	}
	if rec.ExitCode != nil {
		w.int("exitCode", int64(*rec.ExitCode))
	}
	if rec.OOMKilled {
		w.bool("oomKilled", true)
	}
	w.strOmit("startedAt", rec.StartedAt)
	w.strOmit("finishedAt", rec.FinishedAt)
	w.strOmit("ip", rec.IP)
	if rec.Endpoint != nil {
		w.key("endpoint")
		w.endpoint(rec.Endpoint)
	}
	if rec.User != nil {
		w.key("user")
		w.identity(rec.User)
	}
	w.key("spec")
	w.spec(&rec.Spec)
	w.close('}')
	return w.b
}

func (w *jsonWriter) spec(s *Spec) {
	w.open('{')
	w.str("name", s.Name)
	w.str("image", s.Image)
	w.strings("args", s.Args)
	w.strings("env", s.Env)
	w.strOmit("workingDir", s.WorkingDir)
	w.str("hostname", s.Hostname)
	w.boolOmit("tty", s.Tty)
	w.boolOmit("interactive", s.Interactive)
	w.boolOmit("detach", s.Detach)
	w.boolOmit("autoRemove", s.AutoRemove)
	if len(s.Volumes) > 0 {
		w.key("volumes")
		w.objects(len(s.Volumes), func(i int) {
			v := &s.Volumes[i]
			w.str("host", v.Host)
			w.str("target", v.Target)
			w.boolOmit("readOnly", v.ReadOnly)
		})
	}
	l := &s.Limits
	w.key("limits")
	w.open('{')
	w.int("Memory", l.Memory)
	w.int("CPUQuota", l.CPUQuota)
	w.uint("CPUPeriod", l.CPUPeriod)
	w.uint("CPUShares", l.CPUShares)
	w.str("Cpuset", l.Cpuset)
	w.int("PidsLimit", l.PidsLimit)
	w.bool("AllDevices", l.AllDevices)
	w.close('}')
	w.str("cgroupParent", s.CgroupParent)
	w.str("network", s.Network)
	if len(s.Ports) > 0 {
		w.key("ports")
		w.ports(s.Ports)
	}
	o := &s.Security
	w.key("security")
	w.open('{')
	w.boolOmit("privileged", o.Privileged)
	if len(o.CapAdd) > 0 {
		w.strings("capAdd", o.CapAdd)
	}
	if len(o.CapDrop) > 0 {
		w.strings("capDrop", o.CapDrop)
	}
	w.boolOmit("noNewPrivileges", o.NoNewPrivileges)
	w.boolOmit("readOnlyRootfs", o.ReadOnlyRootfs)
	w.strOmit("user", o.User)
	w.strOmit("seccomp", o.Seccomp)
	w.close('}')
	w.close('}')
}

func (w *jsonWriter) endpoint(ep *network.Endpoint) {
	w.open('{')
	w.str("id", ep.ID)
	w.str("network", ep.Network)
	w.str("host_veth", ep.HostVeth)
	w.str("ifname", ep.IfName)
	w.text("ip", ep.IP)
	w.text("subnet", ep.Subnet)
	w.text("gateway", ep.Gateway)
	if len(ep.Ports) > 0 {
		w.key("ports")
		w.ports(ep.Ports)
	}
	w.close('}')
}

func (w *jsonWriter) ports(ps []network.PortMapping) {
	w.objects(len(ps), func(i int) {
		w.uint("host_port", uint64(ps[i].HostPort))
		w.uint("container_port", uint64(ps[i].ContainerPort))
		w.str("proto", ps[i].Proto)
	})
}

// objects writes a list of n objects, the members of each written by members(i).
func (w *jsonWriter) objects(n int, members func(i int)) {
	w.open('[')
	for i := 0; i < n; i++ {
		w.elem()
		w.open('{')
		members(i)
		w.close('}')
	}
	w.close(']')
}

func (w *jsonWriter) identity(id *security.Identity) {
	w.open('{')
	w.uint("uid", uint64(id.UID))
	w.uint("gid", uint64(id.GID))
	if len(id.AdditionalGIDs) > 0 {
		w.key("additionalGids")
		w.open('[')
		for _, g := range id.AdditionalGIDs {
			w.elem()
			w.b = strconv.AppendUint(w.b, uint64(g), 10)
		}
		w.close(']')
	}
	w.strOmit("home", id.Home)
	w.close('}')
}

// jsonWriter writes JSON as json.MarshalIndent(v, "", "  ") lays it out.
type jsonWriter struct {
	b []byte
	n []int // members or elements written so far, per open object or array
}

func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.n = append(w.n, 0)
}

func (w *jsonWriter) close(c byte) {
	n := w.n[len(w.n)-1]
	w.n = w.n[:len(w.n)-1]
	if n > 0 {
		w.newline()
	}
	w.b = append(w.b, c)
}

func (w *jsonWriter) newline() {
	w.b = append(w.b, '\n')
	for range w.n {
		w.b = append(w.b, "  "...)
	}
}

// elem starts the next member or element.
func (w *jsonWriter) elem() {
	if w.n[len(w.n)-1] > 0 {
		w.b = append(w.b, ',')
	}
	w.n[len(w.n)-1]++
	w.newline()
}

func (w *jsonWriter) key(k string) {
	w.elem()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, `": `...)
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = jsonstr.Append(w.b, v)
}

func (w *jsonWriter) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *jsonWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jsonWriter) boolOmit(k string, v bool) {
	if v {
		w.bool(k, v)
	}
}

// strings writes a list of strings; nil is null, as encoding/json writes it.
func (w *jsonWriter) strings(k string, v []string) {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.open('[')
	for _, s := range v {
		w.elem()
		w.b = jsonstr.Append(w.b, s)
	}
	w.close(']')
}

// text writes a value of package netip as encoding/json does: its text, as a string.
func (w *jsonWriter) text(k string, v interface{ MarshalText() ([]byte, error) }) {
	t, _ := v.MarshalText() // never fails for netip's types
	w.str(k, string(t))
}
