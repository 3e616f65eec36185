package container

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/FishingRodd/fockker/container/image"
	"golang.org/x/sys/unix"
)

// Images returns the image store of an installation. It refuses to remove or replace an
// image that a container, running or stopped, was created from.
func Images(roots Roots) *image.Store {
	return image.NewStore(roots.Image, func(name string) ([]string, error) {
		return ImageUsers(roots, name)
	})
}

// ImageUsers names the containers (running or stopped) created from an image.
func ImageUsers(roots Roots, name string) ([]string, error) {
	recs, err := NewStore(roots.State).List()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, r := range recs {
		if r.Spec.Image == name {
			users = append(users, r.Name)
		}
	}
	return users, nil
}

// ViewRootfs calls fn with a read-only view of a container's file system as it is now: its
// writable layer over its image, without /proc, /dev, /sys or volumes. The view is an overlay
// mounted in a mount namespace of one OS thread of ours, so the host never sees it and it
// goes away with the thread whatever happens. fn must do its file work on the goroutine it is
// called on (that thread); the files it writes land on the host as usual.
//
// A running container keeps running: what it writes meanwhile may or may not be seen.
func ViewRootfs(roots Roots, ref string, fn func(rec *Record, root string) error) error {
	rec, err := Lookup(roots, ref)
	if err != nil {
		return err
	}
	lower, err := EnsureImage(roots, rec.Spec.Image)
	if err != nil {
		return fmt.Errorf("container %s: %w", rec.Name, err)
	}
	upper, mnt := roots.UpperDir(rec.Name), roots.MountPoint()
	if err := os.MkdirAll(mnt, 0o711); err != nil {
		return fmt.Errorf("container %s: %w", rec.Name, err)
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, and with it the mount namespace, ends with this
		// goroutine instead of going back to the scheduler with a namespace of its own.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return fmt.Errorf("view of %s: %w", rec.Name, os.NewSyscallError("unshare", err))
			}
			// Nothing mounted here may propagate back to the host.
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return mountErr("private propagation", "/", err)
			}
			// Two lower layers and no upper: a read-only overlay. The container's own overlay
			// (in its namespace) is on the same mount point, which is free in ours.
			opts := fmt.Sprintf("lowerdir=%s:%s", upper, lower)
			if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, opts); err != nil {
				return mountErr("overlay view", mnt, err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			return fn(rec, mnt)
		}()
	}()
	return <-errc
}

// Commit saves a container's file system as the image name (<image-root>/<name>.tar), with
// the config of the image the container was created from. An existing image is replaced only
// with force, and never one a container uses.
func Commit(roots Roots, ref, name string, force bool) (*image.Meta, error) {
	if err := image.ValidateName(name); err != nil {
		return nil, err
	}
	store := Images(roots)
	var meta *image.Meta
	err := ViewRootfs(roots, ref, func(rec *Record, root string) error {
		cfg, err := store.Config(rec.Spec.Image)
		if err != nil {
			return err
		}
		meta, err = store.Commit(root, name, image.Options{
			Force: force, Source: "commit " + rec.Name, Config: cfg,
		})
		return err
	})
	return meta, err
}

// Export writes a container's file system to w as a plain tar (what `import` reads).
func Export(roots Roots, ref string, w io.Writer) error {
	return ViewRootfs(roots, ref, func(rec *Record, root string) error {
		if err := image.WriteTar(w, root); err != nil {
			return fmt.Errorf("export %s: %w", rec.Name, err)
		}
		return nil
	})
}
