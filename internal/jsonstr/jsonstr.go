// Package jsonstr appends strings as encoding/json writes them, for the hand-written encoders
// of the records fockker writes on every run (building encoding/json's encoders by reflection
// costs each new process a fraction of a millisecond).
package jsonstr

import "encoding/json"

// Append appends s as encoding/json writes it: as it is if it is printable ASCII needing no
// escape (HTML escaping included), otherwise as encoding/json escapes it.
func Append(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
