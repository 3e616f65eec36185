/*
 * init.c: a new container's first process, built before the Go runtime exists.
 *
 * The creator (package container, through Init in init.go) starts this binary
 * in new mount, UTS, IPC, PID and (usually) network namespaces, with
 * NSENTER_INIT_ENV set; the root message comes on fd 3 once the layer
 * directories exist (the protocol is in nsenter.h). The constructor then,
 * without ever starting Go:
 *
 *   1. makes every mount private, mounts the overlay on the root directory
 *      and, inside it, /proc, /sys (read-only unless privileged), a tmpfs
 *      /dev with runc's device nodes, a private devpts and /dev/shm, and the
 *      volumes. Paths inside the root are resolved with openat2's
 *      RESOLVE_IN_ROOT, so symlinks in the image never lead out of it, and
 *      every mount targets the resolved fd (/proc/self/fd/N), never a path
 *      that could change in between;
 *   2. pivot_root(".", ".") into it and detaches the old root;
 *   3. masks and write-protects docker's paths, makes the working directory,
 *      remounts the root read-only if asked, sets the hostname, brings lo up;
 *   4. reports ready (one byte 0 on fd 4) and reads the command message,
 *      which may have come already;
 *   5. joins its cgroups (the creator completes them meanwhile; the
 *      hierarchies were opened before pivot_root), and becomes the command
 *      (nsenter_become): working directory, only fds 0-2, user, capabilities,
 *      no_new_privs, seccomp, execve.
 *
 * Everything it mounts lives in its own mount namespace and dies with it: the
 * host never sees the overlay. Any failure is reported on fd 4 with docker's
 * exit code (125 setup, 126 cannot run, 127 not found) and exits with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#endif

#include "nsenter.h"

#ifndef RESOLVE_IN_ROOT
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_IN_ROOT 0x10
struct open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define die(...) nsenter_die(NSENTER_EXIT_SETUP, 0, __VA_ARGS__)
#define die_errno(...) nsenter_die(NSENTER_EXIT_SETUP, errno, __VA_ARGS__)

/* read_full reads exactly n bytes; it returns 0 at EOF before the first byte. */
static int read_full(int fd, void *buf, size_t n, const char *what)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = read(fd, (char *)buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die_errno("read %s", what);
		if (k == 0) {
			if (got == 0)
				return 0;
			die("read %s: truncated", what);
		}
		got += (size_t)k;
	}
	return 1;
}

/* read_message reads one length-prefixed message; NULL at EOF. */
static unsigned char *read_message(int fd, size_t *len, const char *what)
{
	unsigned char hdr[4], *buf;
	uint32_t n;

	if (!read_full(fd, hdr, sizeof(hdr), what))
		return NULL;
	n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (n > NSENTER_MAX_CONFIG)
		die("invalid %s: %u bytes exceed the limit of %d", what, n, NSENTER_MAX_CONFIG);
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		die("out of memory");
	if (n > 0 && !read_full(fd, buf, n, what))
		die("read %s: truncated", what);
	*len = n;
	return buf;
}

/* open_in_root opens path (relative, "." for the root itself) as if rootfd
 * were "/": no symlink or ".." leads above it. */
static int open_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how;
	int fd, tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	/* EAGAIN: a mount or a rename anywhere on the machine raced a ".." of
	 * path, which the kernel then cannot vouch for; EXDEV: its final check
	 * found the result outside the root after such a race. Either only needs
	 * asking again, up to a limit (securejoin retries the same way). */
	do
		fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EXDEV) && ++tries < 128);
	return fd;
}

/* make_in_root opens path (absolute, not "/") inside rootfd's tree as an
 * O_PATH fd, creating what is missing: directories (0755) and, with file, the
 * last component as an empty regular file (0644). Each component is created
 * under its resolved parent by name, and the result opened again with
 * RESOLVE_IN_ROOT: an image's symlinks are followed, but inside the root. A
 * symlink to something missing is followed too: its target is made (as
 * securejoin and MkdirAll would), up to 40 links deep. */
static int make_in_root_depth(int rootfd, const char *path, int file, int depth);

/* append adds s to the string in dst, or returns -1 if it does not fit. */
static int append(char *dst, size_t size, const char *s)
{
	size_t n = strlen(dst), k = strlen(s);

	if (n + k >= size)
		return -1;
	memcpy(dst + n, s, k + 1);
	return 0;
}

static int make_in_root(int rootfd, const char *path, int file)
{
	return make_in_root_depth(rootfd, path, file, 0);
}

static int make_in_root_depth(int rootfd, const char *path, int file, int depth)
{
	char rel[NSENTER_MAX_PATH + 1], link[NSENTER_MAX_PATH + 1], next[NSENTER_MAX_PATH + 1];
	char *end, *base;
	const char *name;
	ssize_t n;
	int fd, parent;

	if (depth > 40) {
		errno = ELOOP;
		die_errno("%s", path);
	}
	if (snprintf(rel, sizeof(rel), "%s", path + 1) >= (int)sizeof(rel))
		die("%s: path too long", path);
	fd = open_in_root(rootfd, rel, O_PATH);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT)
		die_errno("%s", path);
	for (end = rel;; end++) {
		char saved;

		end = strchrnul(end, '/');
		saved = *end;
		*end = '\0';
		fd = open_in_root(rootfd, rel, O_PATH);
		if (fd < 0) {
			if (errno != ENOENT)
				die_errno("%s", path);
			base = strrchr(rel, '/');
			if (base != NULL) {
				*base = '\0';
				parent = open_in_root(rootfd, rel, O_PATH | O_DIRECTORY);
				*base = '/';
				name = base + 1;
			} else {
				parent = open_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
				name = rel;
			}
			if (parent < 0)
				die_errno("%s", path);
			n = readlinkat(parent, name, link, sizeof(link) - 1);
			if (n >= 0) {
				/* A dangling symlink: make its target instead, resolved the same way,
				 * followed by what remains of path. */
				link[n] = '\0';
				next[0] = '\0';
				if (link[0] != '/' && base != NULL) {
					*base = '\0';
					if (append(next, sizeof(next), "/") < 0 || append(next, sizeof(next), rel) < 0)
						die("%s: path too long", path);
				}
				if ((link[0] != '/' && append(next, sizeof(next), "/") < 0) ||
				    append(next, sizeof(next), link) < 0 ||
				    (saved != '\0' && (append(next, sizeof(next), "/") < 0 ||
							append(next, sizeof(next), end + 1) < 0)))
					die("%s: path too long", path);
				close(parent);
				return make_in_root_depth(rootfd, next, file, depth + 1);
			}
			if (saved == '\0' && file) {
				int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);
				if (f < 0 && errno != EEXIST)
					die_errno("create %s", path);
				if (f >= 0)
					close(f);
			} else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
				die_errno("mkdir %s", path);
			}
			close(parent);
			fd = open_in_root(rootfd, rel, O_PATH);
			if (fd < 0)
				die_errno("%s", path);
		}
		if (saved == '\0')
			return fd;
		close(fd);
		*end = saved;
	}
}

/* mount_on mounts onto the file or directory fd refers to. */
static void mount_on(int fd, const char *source, const char *fstype, unsigned long flags,
		     const char *data, const char *what)
{
	char target[64];

	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	if (mount(source, target, fstype, flags, data) < 0)
		die_errno("mount %s", what);
}

/* kept_flags maps statfs flags to the mount flags a bind remount must keep
 * (the kernel refuses to drop locked ones). */
static unsigned long kept_flags(unsigned long f, int atime)
{
	unsigned long m = 0;

	if (f & ST_NOSUID)
		m |= MS_NOSUID;
	if (f & ST_NODEV)
		m |= MS_NODEV;
	if (f & ST_NOEXEC)
		m |= MS_NOEXEC;
	if (atime) {
		if (f & ST_NOATIME)
			m |= MS_NOATIME;
		if (f & ST_NODIRATIME)
			m |= MS_NODIRATIME;
		if (f & ST_RELATIME)
			m |= MS_RELATIME;
	}
	return m;
}

/* mount_fs mounts a file system of the kernel's on the directory name (one
 * component: "proc", "sys", "dev") at the top of the root, made if missing.
 * It must be a real directory, never a symlink: an image whose /proc led
 * elsewhere would get procfs mounted where the masks and read-only binds,
 * which name /proc/..., do not reach it (runc refuses the same). */
static void mount_fs(int rootfd, const char *name, const char *fstype, unsigned long flags,
		     const char *data)
{
	struct stat st;
	int fd;

	if (mkdirat(rootfd, name, 0755) < 0 && errno != EEXIST)
		die_errno("mkdir /%s", name);
	if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		die_errno("/%s", name);
	if (!S_ISDIR(st.st_mode))
		die("/%s in the image is not a directory (a symlink?): refusing to mount %s there", name, fstype);
	fd = openat(rootfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		die_errno("open /%s", name);
	mount_on(fd, fstype, fstype, flags, data, name);
	close(fd);
}

static void setup_dev(int rootfd, int tty)
{
	static const struct {
		const char *name;
		unsigned major, minor;
	} nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
	static const char *links[][2] = {{"ptmx", "pts/ptmx"},
					 {"fd", "/proc/self/fd"},
					 {"stdin", "/proc/self/fd/0"},
					 {"stdout", "/proc/self/fd/1"},
					 {"stderr", "/proc/self/fd/2"}};
	char slave[NSENTER_MAX_PATH + 1] = {0};
	mode_t old;
	size_t i;
	int dev, fd;

	mount_fs(rootfd, "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	dev = openat(rootfd, "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dev < 0)
		die_errno("open /dev");
	old = umask(0);
	for (i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
		if (mknodat(dev, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0)
			die_errno("mknod /dev/%s", nodes[i].name);
	if (mkdirat(dev, "pts", 0755) < 0)
		die_errno("mkdir /dev/pts");
	fd = openat(dev, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		die_errno("open /dev/pts");
	mount_on(fd, "devpts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5",
		 "devpts on /dev/pts");
	close(fd);
	if (mkdirat(dev, "shm", 01777) < 0)
		die_errno("mkdir /dev/shm");
	fd = openat(dev, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		die_errno("open /dev/shm");
	mount_on(fd, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k", "tmpfs on /dev/shm");
	close(fd);
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dev, links[i][0]) < 0)
			die_errno("symlink /dev/%s", links[i][0]);
	if (tty) {
		/* The terminal is the pty on our stdin; it becomes /dev/console too, as in runc. */
		fd = openat(dev, "console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			die_errno("create /dev/console");
		close(fd);
		fd = openat(dev, "console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			die_errno("open /dev/console");
		/* By its path: the fd's mount is the parent's, which a bind refuses. */
		if (readlink("/proc/self/fd/0", slave, sizeof(slave) - 1) < 0)
			die_errno("the terminal on stdin");
		if (slave[0] != '/')
			die("the terminal on stdin is %s, not a file", slave);
		mount_on(fd, slave, NULL, MS_BIND, NULL, "the terminal on /dev/console");
		close(fd);
	}
	umask(old);
	close(dev);
}

static void bind_volume(int rootfd, const struct nsenter_volume *v)
{
	char source[64];
	struct stat st, bound;
	struct statfs sfs;
	int src, dst;

	src = open(v->source, O_PATH | O_CLOEXEC);
	if (src < 0)
		die_errno("volume %s:%s", v->source, v->target);
	if (fstat(src, &st) < 0)
		die_errno("volume %s:%s", v->source, v->target);
	dst = make_in_root(rootfd, v->target, !S_ISDIR(st.st_mode));
	snprintf(source, sizeof(source), "/proc/self/fd/%d", src);
	mount_on(dst, source, NULL, MS_BIND | MS_REC, NULL, v->target);
	close(dst);
	close(src);
	if (!(v->flags & NSENTER_VOLUME_RO))
		return;
	/* Read-only takes a remount of the bind, keeping the flags it has. The
	 * target is looked up again (the fd above is of what lies under the
	 * mount); it must be the bind just made, the source's own inode, or a
	 * shared volume changed meanwhile would get the remount instead. */
	dst = open_in_root(rootfd, v->target + 1, O_PATH);
	if (dst < 0)
		die_errno("volume %s", v->target);
	if (fstat(dst, &bound) < 0)
		die_errno("stat %s", v->target);
	if (bound.st_dev != st.st_dev || bound.st_ino != st.st_ino)
		die("volume %s: the mount point changed while it was bound", v->target);
	if (fstatfs(dst, &sfs) < 0)
		die_errno("statfs %s", v->target);
	mount_on(dst, NULL, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags((unsigned long)sfs.f_flags, 1),
		 NULL, v->target);
	close(dst);
}

static void pivot(const char *root)
{
	if (chdir(root) < 0)
		die_errno("chdir %s", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die_errno("pivot_root %s", root);
	if (umount2(".", MNT_DETACH) < 0)
		die_errno("detach the old root");
	if (chdir("/") < 0)
		die_errno("chdir /");
}

/* remount_ro makes the mount at p read-only, keeping nosuid, nodev, noexec. */
static void remount_ro(const char *p)
{
	struct statfs sfs;

	if (statfs(p, &sfs) < 0)
		die_errno("statfs %s", p);
	if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags((unsigned long)sfs.f_flags, 0), NULL) < 0)
		die_errno("remount %s read-only", p);
}

/* restrict_paths does what docker does for a container that is not privileged,
 * in the container's root: read-only binds of readonly, /dev/null or an empty
 * read-only tmpfs over masked. Paths this kernel lacks are skipped. */
static void restrict_paths(const struct nsenter_init_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nreadonly; i++) {
		const char *p = cfg->readonly[i];

		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			die_errno("bind %s", p);
		}
		remount_ro(p);
	}
	for (i = 0; i < cfg->nmasked; i++) {
		const char *p = cfg->masked[i];
		struct stat st;

		/* Looked at first, unlike runc: a bind of /dev/null on a directory
		 * fails only after the kernel has cloned the mount, and taking the
		 * clone back waits out an expedited RCU grace period (0.05-1 ms). */
		if (stat(p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			die_errno("mask %s", p);
		}
		if (S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL) < 0)
				die_errno("mask %s", p);
		} else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0) {
			die_errno("mask %s", p);
		}
	}
}

/* make_cwd creates the working directory (after pivot_root: inside the root). */
static void make_cwd(const char *cwd)
{
	char p[NSENTER_MAX_PATH + 1], *s;

	snprintf(p, sizeof(p), "%s", cwd);
	for (s = p + 1;; s++) {
		s = strchrnul(s, '/');
		char saved = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			die_errno("working directory %s", cwd);
		if (saved == '\0')
			return;
		*s = saved;
	}
}

static void loopback_up(void)
{
	struct ifreq ifr;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_errno("socket");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		die_errno("SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		die_errno("SIOCSIFFLAGS lo");
	close(fd);
}

/* open_cgroups opens each cgroup hierarchy while the host's mounts are still
 * in view (the cgroup directories in them may not exist yet); fds[i] stays
 * usable after pivot_root detached the mounts. */
static void open_cgroups(const struct nsenter_init_config *cfg, int *fds)
{
	struct statfs sfs;
	size_t i;

	for (i = 0; i < cfg->ncgroups; i++) {
		fds[i] = open(cfg->cgroups[i].hierarchy, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0)
			die_errno("cgroup hierarchy %s", cfg->cgroups[i].hierarchy);
		if (fstatfs(fds[i], &sfs) < 0)
			die_errno("statfs %s", cfg->cgroups[i].hierarchy);
		if (sfs.f_type != CGROUP_SUPER_MAGIC && sfs.f_type != CGROUP2_SUPER_MAGIC)
			die("%s is not a cgroup filesystem", cfg->cgroups[i].hierarchy);
	}
}

/* join_cgroups moves this process into each cgroup. On cgroup v1 it writes to
 * "tasks": moving the calling thread, which is the whole process here (no Go
 * runtime, one thread), spares the kernel the global write lock that moving
 * a process through cgroup.procs takes, a full RCU grace period (~10 ms). */
static void join_cgroups(const struct nsenter_init_config *cfg, const int *fds)
{
	char file[NSENTER_MAX_PATH + 32];
	struct statfs sfs;
	size_t i;
	int fd;

	for (i = 0; i < cfg->ncgroups; i++) {
		const struct nsenter_cgroup *cg = &cfg->cgroups[i];

		if (fstatfs(fds[i], &sfs) < 0)
			die_errno("statfs %s", cg->hierarchy);
		snprintf(file, sizeof(file), "%s/%s", cg->path,
			 sfs.f_type == CGROUP_SUPER_MAGIC ? "tasks" : "cgroup.procs");
		fd = openat(fds[i], file, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			die_errno("open %s/%s", cg->hierarchy, file);
		if (write(fd, "0", 1) != 1)
			die_errno("join cgroup %s/%s", cg->hierarchy, cg->path);
		close(fd);
	}
}

static void build_root(struct nsenter_init_config *cfg)
{
	int restrict_ = (cfg->flags & NSENTER_INIT_RESTRICT) != 0;
	size_t i;
	int rootfd;

	/* Nothing mounted here may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die_errno("make / private");
	if (mount("overlay", cfg->root, "overlay", 0, cfg->overlay) < 0) {
		/* Kernels before 5.10 know no "volatile": mount without it. */
		size_t n = strlen(cfg->overlay), k = strlen(",volatile");
		if (errno != EINVAL || n < k || strcmp(cfg->overlay + n - k, ",volatile") != 0)
			die_errno("mount overlay on %s", cfg->root);
		cfg->overlay[n - k] = '\0';
		if (mount("overlay", cfg->root, "overlay", 0, cfg->overlay) < 0)
			die_errno("mount overlay on %s", cfg->root);
	}
	rootfd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die_errno("open %s", cfg->root);
	mount_fs(rootfd, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs(rootfd, "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (restrict_ ? MS_RDONLY : 0), NULL);
	setup_dev(rootfd, (cfg->flags & NSENTER_INIT_TTY) != 0);
	for (i = 0; i < cfg->nvolumes; i++)
		bind_volume(rootfd, &cfg->volumes[i]);
	close(rootfd);
	pivot(cfg->root);

	/* In the container's root now. Docker's order: masked and read-only
	 * paths, the working directory (made while the root is still
	 * writable), the read-only root. */
	if (restrict_)
		restrict_paths(cfg);
	if (cfg->cwd[0] != '\0')
		make_cwd(cfg->cwd);
	if (cfg->flags & NSENTER_INIT_RO_ROOT)
		remount_ro("/");
	if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		die_errno("sethostname");
	if (cfg->flags & NSENTER_INIT_LOOPBACK)
		loopback_up();
}

__attribute__((noreturn)) static void run_init(const char *fdstr)
{
	struct nsenter_init_config root;
	struct nsenter_config cmd;
	unsigned char *buf, ready = 0;
	char err[256];
	size_t len;
	int *cgfds;
	int fd = nsenter_parse_fd(fdstr);

	/* Errors go to the creator from here on; nothing of ours reaches the command. */
	if (fcntl(NSENTER_INIT_STATUS_FD, F_SETFD, FD_CLOEXEC) < 0)
		_exit(NSENTER_EXIT_SETUP);
	nsenter_set_report(NSENTER_INIT_STATUS_FD, "");
	if (fd != NSENTER_INIT_CONFIG_FD)
		die("%s=%.20s: want %d", NSENTER_INIT_ENV, fdstr, NSENTER_INIT_CONFIG_FD);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		die_errno("config fd");

	buf = read_message(fd, &len, "root config");
	if (buf == NULL)
		die("no root config");
	if (nsenter_decode_init(buf, len, &root, err, sizeof(err)) < 0)
		die("invalid root config: %s", err);
	free(buf);
	cgfds = calloc(root.ncgroups + 1, sizeof(int));
	if (cgfds == NULL)
		die("out of memory");
	open_cgroups(&root, cgfds);
	build_root(&root);

	if (write(NSENTER_INIT_STATUS_FD, &ready, 1) != 1)
		die_errno("report ready");
	/* Parked until the creator has the container in its cgroup and network. */
	buf = read_message(fd, &len, "command config");
	if (buf == NULL)
		_exit(NSENTER_EXIT_SETUP); /* the creator gave up */
	if (nsenter_decode(buf, len, &cmd, err, sizeof(err)) < 0)
		die("invalid command config: %s", err);
	free(buf);
	close(fd);
	join_cgroups(&root, cgfds);
	nsenter_become(&cmd);
}

void nsenter_init_constructor(void)
{
	const char *v = getenv(NSENTER_INIT_ENV);

	if (v == NULL)
		return;
	run_init(v);
}
