package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Logs copies a container's log to w; with follow it keeps copying until the container
// stops (or ctx ends), like `docker logs -f`.
func Logs(ctx context.Context, roots Roots, ref string, follow bool, w io.Writer) error {
	rec, err := Lookup(roots, ref)
	if err != nil {
		return err
	}
	f, err := os.Open(roots.LogPath(rec.Name))
	if errors.Is(err, os.ErrNotExist) {
		if !rec.Spec.Detach {
			return fmt.Errorf("container %s ran attached: its output went to the terminal, not to a log", rec.Name)
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		cur, err := NewStore(roots.State).Load(rec.Name)
		if err != nil || cur.ID != rec.ID || State(cur) == Stopped {
			_, err := io.Copy(w, f) // what was written before the exit
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
