package network

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// checkDecode checks, for one input, that whatever the small decoders take
// encoding/json takes too and decodes to the same.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	if n, ok := decodeNetwork(b); ok {
		var want Network
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("decodeNetwork took %q, encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(*n, want) {
			t.Fatalf("decodeNetwork(%q) = %+v, encoding/json %+v", b, *n, want)
		}
	}
	if rec, ok := decodeRecord(b); ok {
		var want endpointRecord
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("decodeRecord took %q, encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(*rec, want) {
			t.Fatalf("decodeRecord(%q) = %+v, encoding/json %+v", b, *rec, want)
		}
	}
}

// What fockker writes is taken by the small decoders; what they do not take
// is left to encoding/json, and what they take they read as it does.
func TestDecode(t *testing.T) {
	n := &Network{Name: "fockker0", Driver: "bridge", Subnet: netip.MustParsePrefix("192.168.0.0/24"), Gateway: netip.MustParseAddr("192.168.0.1"), Bridge: "fockker0"}
	cfg, _ := json.MarshalIndent(n, "", "  ")
	if got, ok := decodeNetwork(cfg); !ok || *got != *n {
		t.Fatalf("decodeNetwork of a saved config: %+v, %v", got, ok)
	}
	rec := &endpointRecord{Endpoint: Endpoint{ID: "1234567890", Network: "fockker0", HostVeth: "veth1234567", IfName: "eth0",
		IP: netip.MustParseAddr("192.168.0.7"), Subnet: n.Subnet, Gateway: n.Gateway,
		Ports: []PortMapping{pm(8080, 80, "tcp"), pm(65535, 1, "udp")}}, Process: &process{Pid: 4242, Start: 1 << 40}}
	for _, r := range []*endpointRecord{rec, {Endpoint: Endpoint{ID: "x", Network: "n"}}} {
		b := marshalRecord(r)
		if got, ok := decodeRecord(b); !ok || !reflect.DeepEqual(got, r) {
			t.Fatalf("decodeRecord of a saved record: %+v, %v", got, ok)
		}
	}

	for _, s := range []string{
		``, ` `, `{}`, `[]`, `null`, `{"name":"a"}`, `{"name":"a"} x`, `{"name":"a",}`, `{"name" "a"}`, `{"name":"a" "driver":"b"}`,
		`{"NAME":"a"}`, `{"Name":"a"}`, `{"name":"a","name":"b"}`, `{"name":"\u0061"}`, `{"name":"é"}`, `{"name":null}`, `{"name":1}`,
		`{"subnet":"bogus"}`, `{"subnet":""}`, `{"gateway":"10.0.0.1"}`, `{"gateway":"fd00::1"}`, `{"other":"x"}`,
		` { "name" : "a" , "bridge" : "b" } `, "{\t\"name\":\r\n\"a\"}",
		`{"id":"a","ports":[]}`, `{"id":"a","ports":null}`, `{"ports":[{"host_port":1,"container_port":2,"proto":"tcp"}]}`,
		`{"ports":[{"host_port":65536}]}`, `{"ports":[{"host_port":-1}]}`, `{"ports":[{"host_port":01}]}`, `{"ports":[{"host_port":1.0}]}`,
		`{"ports":[{"host_port":1e2}]}`, `{"ports":[{"host_port":"1"}]}`, `{"ports":[{"Host_Port":1}]}`, `{"ports":[1]}`, `{"ports":{}}`,
		`{"process":{"pid":-1,"start":18446744073709551615}}`, `{"process":{"pid":1,"start":18446744073709551616}}`,
		`{"process":{"pid":1},"process":{"start":2}}`, `{"process":{}}`, `{"process":[]}`, `{"process":{"pid":1,"pid":2}}`,
		`{"process":{"pid":-0}}`, `{"process":{"pid":-}}`, `{"ip":"192.168.0.300"}`, `{"ip":""}`, `{"ifname":"eth0"}`,
		`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{}}}}}}}}}}`, `[[[[[[[[[[]]]]]]]]]]`,
	} {
		checkDecode(t, []byte(s))
	}
	// Mutations of what fockker writes: cut, a byte changed, a byte taken out.
	r := rand.New(rand.NewPCG(7, 8))
	const bytes = "{}[]\",: -019aeE.\\\nx\x00"
	for _, b := range [][]byte{cfg, marshalRecord(rec)} {
		for range 20000 {
			m := []byte(string(b))
			switch i := r.IntN(len(m)); r.IntN(3) {
			case 0:
				m = m[:i]
			case 1:
				m[i] = bytes[r.IntN(len(bytes))]
			default:
				m = append(m[:i], m[i+1:]...)
			}
			checkDecode(t, m)
		}
	}
}

func FuzzDecode(f *testing.F) {
	n := &Network{Name: "fockker0", Driver: "bridge", Subnet: netip.MustParsePrefix("192.168.0.0/24"), Gateway: netip.MustParseAddr("192.168.0.1"), Bridge: "fockker0"}
	cfg, _ := json.MarshalIndent(n, "", "  ")
	f.Add(cfg)
	f.Add(marshalRecord(&endpointRecord{Endpoint: Endpoint{ID: "1", Ports: []PortMapping{pm(1, 2, "tcp")}}, Process: &process{1, 2}}))
	f.Add([]byte(strings.Repeat("[", 100)))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}
