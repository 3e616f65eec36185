//go:build !linux || !cgo

package nsenter

// constructorLinked is false: without cgo the C constructor is not in this
// binary, so Command refuses to build a process that would run plain Go.
const constructorLinked = false

// takePrefork: without the constructor there is never a prefork helper.
func takePrefork() (fd, pid int) { return -1, -1 }

// cPreforkWanted: without the constructor no command line gets a helper.
func cPreforkWanted([]string, bool) bool { return false }
