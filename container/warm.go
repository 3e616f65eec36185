package container

import "encoding/json"

// Warm starts, in the background, the one-time work that the first record read of this
// process would otherwise do on the path the user waits on: building encoding/json's decoder
// for Record, by reflection over every field. (Records are written by marshalRecord, without
// reflection.) It never fails and nothing waits for it; call it once, early.
func Warm() {
	go func() {
		var r Record
		_ = json.Unmarshal(marshalRecord(&Record{}), &r)
	}()
}
