package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// createLayers makes a container's three overlay directories, each marked with the state root
// it belongs to (see Prune). Each must be new: a leftover with the same name belongs to
// something else and is never reused or deleted here.
func createLayers(roots Roots, name string) (err error) {
	dirs := []string{roots.UpperDir(name), roots.WorkDir(name), roots.MergedDir(name)}
	var made []string
	defer func() {
		if err != nil {
			for _, d := range made {
				os.RemoveAll(d)
			}
		}
	}()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Dir(d), 0o711); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", d, ErrLayerExists)
			}
			return err
		}
		made = append(made, d)
		if err := markLayer(d, roots.State); err != nil {
			return err
		}
	}
	return nil
}

// removeLayers deletes a container's overlay directories. The overlay itself is mounted only
// inside the container's mount namespace and went away with it, so there is nothing to
// unmount here; a directory that is already gone is fine.
func removeLayers(roots Roots, name string) error {
	var errs []error
	for _, d := range []string{roots.MergedDir(name), roots.UpperDir(name), roots.WorkDir(name)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountErr wraps a mount failure with what was being mounted where.
func mountErr(what, target string, err error) error {
	return fmt.Errorf("mount %s on %s: %w", what, target, os.NewSyscallError("mount", err))
}

// setupRootfs runs inside the container's fresh mount namespace and leaves the process with
// the overlay as its root: propagation private, overlay, /proc, /sys, /dev, volumes, then
// pivot_root with the old root detached.
func setupRootfs(cfg *initConfig) error {
	// Nothing we mount may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return mountErr("private propagation", "/", err)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg.Lower, cfg.Upper, cfg.Work)
	if err := unix.Mount("overlay", cfg.Merged, "overlay", 0, opts); err != nil {
		return mountErr("overlay", cfg.Merged, err)
	}
	root := cfg.Merged
	if err := mountProc(root); err != nil {
		return err
	}
	if err := mountSys(root, cfg.Security == nil || !cfg.Security.Privileged); err != nil {
		return err
	}
	if err := setupDev(root, cfg.Tty); err != nil {
		return err
	}
	for _, v := range cfg.Volumes {
		if err := bindVolume(root, v); err != nil {
			return err
		}
	}
	return pivotRoot(root)
}

// inRoot resolves a container path inside root; symlinks in the image cannot lead outside.
func inRoot(root, p string) (string, error) {
	return securejoin.SecureJoin(root, p)
}

func mkdirInRoot(root, p string, mode os.FileMode) (string, error) {
	dst, err := inRoot(root, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, mode); err != nil {
		return "", err
	}
	return dst, nil
}

func mountProc(root string) error {
	dst, err := mkdirInRoot(root, "/proc", 0o555)
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", dst, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return mountErr("proc", dst, err)
	}
	return nil
}

// mountSys mounts sysfs, read-only unless the container is privileged (as docker does).
func mountSys(root string, readOnly bool) error {
	dst, err := mkdirInRoot(root, "/sys", 0o555)
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("sysfs", dst, "sysfs", flags, ""); err != nil {
		return mountErr("sysfs", dst, err)
	}
	return nil
}

// device is a character device node every container gets.
type device struct {
	name         string
	major, minor uint32
}

// defaultDevices is runc's default set of device nodes.
func defaultDevices() []device {
	return []device{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
}

// setupDev builds /dev as a small tmpfs: the standard devices, a private devpts instance with
// its ptmx, /dev/shm, the /proc/self/fd links and, with a terminal, /dev/console.
func setupDev(root string, tty bool) error {
	dev, err := mkdirInRoot(root, "/dev", 0o755)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return mountErr("tmpfs", dev, err)
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range defaultDevices() {
		p := filepath.Join(dev, d.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
	}
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return mountErr("devpts", pts, err)
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return mountErr("tmpfs", shm, err)
	}
	for link, target := range map[string]string{
		"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	if tty {
		// The terminal is the host pty on our stdin; make it /dev/console too, as runc does.
		slave, err := os.Readlink("/proc/self/fd/0")
		if err != nil {
			return err
		}
		console := filepath.Join(dev, "console")
		if err := os.WriteFile(console, nil, 0o600); err != nil {
			return err
		}
		if err := unix.Mount(slave, console, "", unix.MS_BIND, ""); err != nil {
			return mountErr("console", console, err)
		}
	}
	return nil
}

// bindVolume binds a host path into the container, creating the host directory if it is
// missing (as the seed does) and the mount point inside the rootfs.
func bindVolume(root string, v Volume) error {
	fi, err := os.Stat(v.Host)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(v.Host, 0o755); err != nil {
			return fmt.Errorf("volume %s: create host directory: %w", v, err)
		}
		fi, err = os.Stat(v.Host)
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", v, err)
	}
	dst, err := inRoot(root, v.Target)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v, err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(dst, 0o755)
	} else {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644); err == nil {
				err = f.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("volume %s: mount point: %w", v, err)
	}
	if err := unix.Mount(v.Host, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return mountErr("volume "+v.String(), dst, err)
	}
	if v.ReadOnly {
		// A read-only bind needs a remount that keeps the flags the source already has.
		var st unix.Statfs_t
		if err := unix.Statfs(dst, &st); err != nil {
			return &os.PathError{Op: "statfs", Path: dst, Err: err}
		}
		flags := uintptr(unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY) | lockedFlags(st.Flags)
		if err := unix.Mount("", dst, "", flags, ""); err != nil {
			return mountErr("read-only volume "+v.String(), dst, err)
		}
	}
	return nil
}

// lockedFlags maps statfs flags to the mount flags a bind remount must keep.
func lockedFlags(f int64) uintptr {
	var m uintptr
	for _, p := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if f&p.st != 0 {
			m |= p.ms
		}
	}
	return m
}

// pivotRoot makes root the process's / and detaches the old root, using the
// pivot_root(".", ".") trick so no directory is left behind in the image.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: root, Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount old root", Path: root, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}
