package container

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"net/netip"
	"reflect"
	"testing"

	"github.com/FishingRodd/fockker/container/cgroup"
)

// fillRandom sets every exported field that v (a pointer) reaches to a random value, zero
// values and nil slices included: a field the hand encoder does not know then makes its
// output differ from encoding/json's.
func fillRandom(r *rand.Rand, v reflect.Value) {
	switch x := v.Addr().Interface().(type) {
	case *netip.Addr:
		if r.Intn(4) > 0 {
			var a [4]byte
			r.Read(a[:])
			*x = netip.AddrFrom4(a)
		}
		return
	case *netip.Prefix:
		if r.Intn(4) > 0 {
			var a [4]byte
			r.Read(a[:])
			*x = netip.PrefixFrom(netip.AddrFrom4(a), r.Intn(33))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillRandom(r, v.Field(i))
			}
		}
	case reflect.Pointer:
		if r.Intn(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fillRandom(r, v.Elem())
		}
	case reflect.Slice:
		switch r.Intn(4) {
		case 0: // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + r.Intn(3)
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := 0; i < n; i++ {
				fillRandom(r, v.Index(i))
			}
		}
	case reflect.String:
		v.SetString(randomString(r))
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if r.Intn(3) > 0 {
			v.SetInt(int64(r.Uint64()) >> uint(64-v.Type().Bits()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if r.Intn(3) > 0 {
			v.SetUint(r.Uint64() >> uint(64-v.Type().Bits()))
		}
	default:
		panic("fillRandom: no random values for " + v.Type().String())
	}
}

func randomString(r *rand.Rand) string {
	pieces := []string{"", "a", "busybox", "/bin/sh", "KEY=value", "x y", `"`, `\`, "<&>", "\n", "\t", "\x00", "\x7f", "é", "日本", "\u2028", "\xff", `{"a":1}`}
	var s string
	for n := r.Intn(4); n > 0; n-- {
		s += pieces[r.Intn(len(pieces))]
	}
	return s
}

// TestMarshalRecord: the hand encoder writes what json.MarshalIndent writes, byte for byte,
// for random records and for the ones run writes.
func TestMarshalRecord(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		var rec Record
		fillRandom(r, reflect.ValueOf(&rec).Elem())
		want, err := json.MarshalIndent(&rec, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalRecord(&rec); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, rec := range []*Record{{}, {Command: []string{}, Volume: []string{}, PortMapping: []string{}}} {
		want, _ := json.MarshalIndent(rec, "", "  ")
		if got := marshalRecord(rec); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	}
}

// FuzzMarshalRecord feeds the fuzzer's strings and numbers to the fields where escaping and
// number formats matter.
func FuzzMarshalRecord(f *testing.F) {
	f.Add("c1", "busybox", "/bin/sh -c 'echo <hi>'", int64(-1), uint64(42), true)
	f.Add("", "\x00\xff", "\u2028\u2029", int64(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, name, image, arg string, n int64, u uint64, b bool) {
		code := int(n)
		rec := &Record{Name: name, Command: []string{arg, name}, ExitCode: &code, StartTime: u, OOMKilled: b,
			Spec: Spec{Image: image, Args: []string{arg}, Env: []string{}, Tty: b, Limits: cgroup.Limits{Memory: n, CPUPeriod: u, Cpuset: arg}}}
		rec.Spec.Security.Seccomp = arg
		want, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalRecord(rec); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}
