package network

import "strconv"

// The network's config and the endpoint records are read back by every
// operation, and encoding/json spends a few hundred microseconds building
// its decoders for their types in each new fockker process. The files are
// read first with the small decoder below, which takes only the plain JSON
// that fockker writes: objects, arrays, strings of printable ASCII without
// escapes, and integers, with exactly the members of the type, each once.
// Anything else, valid or not, is left to encoding/json, so that what is
// read, and every error, is what encoding/json makes of it; for what the
// small decoder takes, it gives what encoding/json would (see the tests).

// jvalue is a JSON value of that subset.
type jvalue struct {
	kind byte     // 's' string, 'n' integer, 'o' object, 'a' array
	text string   // a string's content, an integer's digits
	obj  []member // an object's members, in order
	arr  []jvalue // an array's elements
}

type member struct {
	key string
	val jvalue
}

// parseJSON parses b as one value of the subset, with nothing but blanks
// around it.
func parseJSON(b []byte) (jvalue, bool) {
	p := parser{b: b}
	v, ok := p.value(0)
	p.blanks()
	return v, ok && p.i == len(b)
}

type parser struct {
	b []byte
	i int
}

// maxDepth bounds the nesting the decoder takes; our files nest three deep.
const maxDepth = 8

func (p *parser) blanks() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek(c byte) bool {
	p.blanks()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) value(depth int) (jvalue, bool) {
	p.blanks()
	if p.i >= len(p.b) || depth > maxDepth {
		return jvalue{}, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		s, ok := p.string()
		return jvalue{kind: 's', text: s}, ok
	case c == '-' || '0' <= c && c <= '9':
		return p.integer()
	case c == '{':
		p.i++
		v := jvalue{kind: 'o'}
		if p.peek('}') {
			return v, true
		}
		for {
			p.blanks()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return v, false
			}
			key, ok := p.string()
			if !ok || !p.peek(':') {
				return v, false
			}
			val, ok := p.value(depth + 1)
			if !ok {
				return v, false
			}
			v.obj = append(v.obj, member{key, val})
			if p.peek('}') {
				return v, true
			}
			if !p.peek(',') {
				return v, false
			}
		}
	case c == '[':
		p.i++
		v := jvalue{kind: 'a', arr: []jvalue{}}
		if p.peek(']') {
			return v, true
		}
		for {
			e, ok := p.value(depth + 1)
			if !ok {
				return v, false
			}
			v.arr = append(v.arr, e)
			if p.peek(']') {
				return v, true
			}
			if !p.peek(',') {
				return v, false
			}
		}
	}
	return jvalue{}, false
}

// string reads a string of printable ASCII without escapes.
func (p *parser) string() (string, bool) {
	p.i++ // the opening quote
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return string(p.b[start : p.i-1]), true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", false
		}
	}
	return "", false
}

// integer reads an integer as JSON writes it: no leading zero, no
// fraction or exponent.
func (p *parser) integer() (jvalue, bool) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 1 && p.b[digits] == '0' {
		return jvalue{}, false
	}
	if p.i < len(p.b) {
		if c := p.b[p.i]; c == '.' || c == 'e' || c == 'E' {
			return jvalue{}, false
		}
	}
	return jvalue{kind: 'n', text: string(p.b[start:p.i])}, true
}

// fields calls set with each member of object v, which must name one of
// keys no more than once, and reports whether all of them were taken.
func fields(v jvalue, keys []string, set func(i int, val jvalue) bool) bool {
	if v.kind != 'o' {
		return false
	}
	var seen uint64
	for _, m := range v.obj {
		i := 0
		for i < len(keys) && keys[i] != m.key {
			i++
		}
		if i == len(keys) || seen&(1<<i) != 0 || !set(i, m.val) {
			return false
		}
		seen |= 1 << i
	}
	return true
}

func str(v jvalue, dst *string) bool {
	*dst = v.text
	return v.kind == 's'
}

// text sets dst from v as encoding/json does for a TextUnmarshaler.
func text(v jvalue, dst interface{ UnmarshalText([]byte) error }) bool {
	return v.kind == 's' && dst.UnmarshalText([]byte(v.text)) == nil
}

func uintOf(v jvalue, bits int) (uint64, bool) {
	if v.kind != 'n' {
		return 0, false
	}
	n, err := strconv.ParseUint(v.text, 10, bits)
	return n, err == nil
}

// decodeNetwork decodes a network's config if the small decoder takes it.
func decodeNetwork(b []byte) (*Network, bool) {
	v, ok := parseJSON(b)
	if !ok {
		return nil, false
	}
	var n Network
	return &n, fields(v, []string{"name", "driver", "subnet", "gateway", "bridge"}, func(i int, val jvalue) bool {
		switch i {
		case 0:
			return str(val, &n.Name)
		case 1:
			return str(val, &n.Driver)
		case 2:
			return text(val, &n.Subnet)
		case 3:
			return text(val, &n.Gateway)
		default:
			return str(val, &n.Bridge)
		}
	})
}

// decodeRecord decodes an endpoint record if the small decoder takes it.
func decodeRecord(b []byte) (*endpointRecord, bool) {
	v, ok := parseJSON(b)
	if !ok {
		return nil, false
	}
	var rec endpointRecord
	ep := &rec.Endpoint
	recordKeys := []string{"id", "network", "host_veth", "ifname", "ip", "subnet", "gateway", "ports", "process"}
	portKeys := []string{"host_port", "container_port", "proto"}
	return &rec, fields(v, recordKeys, func(i int, val jvalue) bool {
		switch i {
		case 0:
			return str(val, &ep.ID)
		case 1:
			return str(val, &ep.Network)
		case 2:
			return str(val, &ep.HostVeth)
		case 3:
			return str(val, &ep.IfName)
		case 4:
			return text(val, &ep.IP)
		case 5:
			return text(val, &ep.Subnet)
		case 6:
			return text(val, &ep.Gateway)
		case 7:
			if val.kind != 'a' {
				return false
			}
			ep.Ports = make([]PortMapping, len(val.arr))
			for j, e := range val.arr {
				p := &ep.Ports[j]
				if !fields(e, portKeys, func(i int, val jvalue) bool {
					if i == 2 {
						return str(val, &p.Proto)
					}
					n, ok := uintOf(val, 16)
					if i == 0 {
						p.HostPort = uint16(n)
					} else {
						p.ContainerPort = uint16(n)
					}
					return ok
				}) {
					return false
				}
			}
			return true
		default:
			rec.Process = &process{}
			return fields(val, []string{"pid", "start"}, func(i int, val jvalue) bool {
				if i == 1 {
					n, ok := uintOf(val, 64)
					rec.Process.Start = n
					return ok
				}
				if val.kind != 'n' {
					return false
				}
				n, err := strconv.ParseInt(val.text, 10, strconv.IntSize)
				rec.Process.Pid = int(n)
				return err == nil
			})
		}
	})
}
