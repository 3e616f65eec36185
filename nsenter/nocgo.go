//go:build !linux || !cgo

package nsenter

// constructorLinked is false: without cgo the C constructor is not in this
// binary, so Command refuses to build a process that would run plain Go.
const constructorLinked = false
