package container

import (
	"encoding/json"
	"os"
)

// Warm starts, in the background, the one-time work that the first record read or write
// and the first process start of this process would otherwise do on the path the user
// waits on: building encoding/json's encoder and decoder for Record (reflection over
// every field, ~0.5 ms) and the os package's check that pidfds work (it clones a process).
// It never fails and nothing waits for it; call it once, early.
func Warm() {
	go func() {
		b, err := json.Marshal(&Record{})
		if err == nil {
			var r Record
			_ = json.Unmarshal(b, &r)
		}
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Release()
		}
	}()
}
