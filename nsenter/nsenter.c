/*
 * nsenter.c: join a running container and run one command in it.
 *
 * Runs from an ELF constructor, before the Go runtime exists, in a process
 * that is single-threaded (setns(CLONE_NEWNS) requires that). Steps:
 *
 *   1. read and decode the whole config from the fd in NSENTER_ENV;
 *   2. open /proc/PID once and, relative to that directory, every namespace
 *      file, the root directory and every cgroup's tasks (v1) or cgroup.procs
 *      (v2) file, before joining
 *      anything; a requested namespace that is also ours is refused, so a
 *      mistaken target can never make the command run on the host;
 *   3. read the start time through the same /proc/PID directory and compare
 *      it: a /proc/PID fd stays bound to the process it was opened for (once
 *      that process is reaped, reads through it fail even if the number is
 *      reused), so a match proves every fd opened in step 2 belongs to the
 *      expected process;
 *   4. join each cgroup (before the cgroup namespace and
 *      while the host mount namespace still applies);
 *   5. setns ipc, uts, net, pid, cgroup, then mnt, and chroot to the target's
 *      root (pivot_root'ed or chroot'ed containers both end up right);
 *   6. fork: joining a PID namespace only applies to children. The child
 *      chdirs, makes stdin its controlling tty if asked, keeps only fds 0-2,
 *      takes on the container's restrictions (see drop_privileges()), and
 *      execve()s argv with the configured environment, searching PATH
 *      from that environment. It never uses a shell.
 *   7. the parent stays a small C process (the Go runtime never starts),
 *      forwards signals and exits with the child's status.
 *
 * Exit codes follow docker: 125 for any setup failure (nothing ran), 126 if
 * the command exists but cannot be executed, 127 if it does not exist,
 * 128+N if it was killed by signal N, else its own exit status.
 *
 * Exec failures are reported by the child itself: it prints
 * "fockker exec: CMD: REASON" on its stderr (the caller's stderr or pty) and
 * _exit()s with 126 or 127, which the parent passes through like any other
 * status. As with a shell, a command that itself exits 126/127 looks the same.
 *
 * With NSENTER_FLAG_DETACH the parent does not wait for the command: the
 * child holds the write end of a close-on-exec pipe; a failure writes its
 * exit code there before the child exits, a successful execve closes it
 * empty. The parent exits with that code, or 0 once the command runs; the
 * command, in a session of its own, is re-parented to the container's init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsenter.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif


/* The order in which namespaces are joined. The mount namespace comes last:
 * after it, host paths no longer resolve (all fds are open by then anyway),
 * and chroot to the target's root follows it. PID only affects the fork. */
static const struct {
	unsigned flag;
	const char *name;
	int nstype;
} namespaces[] = {
	{NSENTER_NS_IPC, "ipc", CLONE_NEWIPC},
	{NSENTER_NS_UTS, "uts", CLONE_NEWUTS},
	{NSENTER_NS_NET, "net", CLONE_NEWNET},
	{NSENTER_NS_PID, "pid", CLONE_NEWPID},
	{NSENTER_NS_CGROUP, "cgroup", CLONE_NEWCGROUP},
	{NSENTER_NS_MNT, "mnt", CLONE_NEWNS},
};
#define NNAMESPACES (sizeof(namespaces) / sizeof(namespaces[0]))

/* Signals the parent relays to the command. SIGWINCH is not needed: with a
 * tty the command shares the pty, whose size changes reach it directly. */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* Everything opened in step 2. */
struct target {
	int nsfd[NNAMESPACES]; /* -1 if not requested */
	int rootfd;
	int *cgfd; /* one per cfg->cgroups entry */
};

/* report_fd is the detach report pipe in a detached command's child (see
 * above), -1 everywhere else. The constructor runs once per process, before
 * any thread exists, so a plain static is safe. */
static int report_fd = -1;

/* report_prefix starts every message: the command that failed, as the user
 * knows it ("fockker exec: "), or nothing for the container's init, whose
 * creator adds its own context. */
static const char *report_prefix = "fockker exec: ";

/* vreport prints "fockker exec: MESSAGE[: strerror]" on stderr; in a
 * detached command's child it sends code and message to the parent instead,
 * which prints them on the caller's stderr. */
static void vreport(int code, int errnum, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n = 1;
	int k;

	buf[0] = (char)code;
	k = snprintf(buf + n, sizeof(buf) - n, "%s", report_prefix);
	if (k > 0)
		n += (size_t)k;
	k = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (k > 0)
		n += (size_t)k;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (errnum != 0) {
		k = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(errnum));
		if (k > 0)
			n += (size_t)k;
		if (n > sizeof(buf) - 2)
			n = sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	/* Best effort: there is nowhere else to report a failing write. One
	 * write of at most PIPE_BUF bytes reaches the parent whole. */
	if (report_fd >= 0) {
		if (write(report_fd, buf, n) < 0)
			return;
		return;
	}
	if (write(STDERR_FILENO, buf + 1, n - 1) < 0)
		return;
}

__attribute__((noreturn, format(printf, 2, 3))) static void fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(code, 0, fmt, ap);
	va_end(ap);
	_exit(code);
}

/* fatal_errno reports errno and exits with the setup failure code. */
__attribute__((noreturn, format(printf, 1, 2))) static void fatal_errno(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vreport(NSENTER_EXIT_SETUP, saved, fmt, ap);
	va_end(ap);
	_exit(NSENTER_EXIT_SETUP);
}

static unsigned char *read_config(int fd, size_t *len)
{
	unsigned char *buf;
	struct stat st;
	size_t n = 0;
	ssize_t k;

	if (fstat(fd, &st) < 0)
		fatal_errno("config fd %d", fd);
	if (!S_ISFIFO(st.st_mode))
		fatal(NSENTER_EXIT_SETUP, "config fd %d is not a pipe", fd);
	/* One byte more than allowed, to tell "exactly the limit" from "too long". */
	buf = malloc(NSENTER_MAX_CONFIG + 1);
	if (buf == NULL)
		fatal(NSENTER_EXIT_SETUP, "out of memory");
	while (n < NSENTER_MAX_CONFIG + 1) {
		k = read(fd, buf + n, NSENTER_MAX_CONFIG + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			fatal_errno("read config");
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > NSENTER_MAX_CONFIG)
		fatal(NSENTER_EXIT_SETUP, "invalid config: larger than %d bytes", NSENTER_MAX_CONFIG);
	close(fd);
	*len = n;
	return buf;
}

/* read_start_time reads field 22 of stat through the /proc/PID directory fd. */
static uint64_t read_start_time(int procfd, uint32_t pid)
{
	char buf[4096];
	uint64_t v;
	size_t n = 0;
	ssize_t k;
	int fd;

	fd = openat(procfd, "stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal_errno("process %u is gone", pid);
	while (n < sizeof(buf)) {
		k = read(fd, buf + n, sizeof(buf) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			fatal_errno("process %u is gone: read stat", pid);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	if (n == sizeof(buf) || nsenter_parse_start_time(buf, n, &v) < 0)
		fatal(NSENTER_EXIT_SETUP, "cannot parse /proc/%u/stat", pid);
	return v;
}

static void open_target(const struct nsenter_config *cfg, struct target *t)
{
	char path[64];
	struct stat theirs, ours;
	struct statfs sfs;
	uint64_t start;
	size_t i;
	int procfd;

	snprintf(path, sizeof(path), "/proc/%u", cfg->pid);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		fatal_errno("process %u", cfg->pid);

	for (i = 0; i < NNAMESPACES; i++) {
		t->nsfd[i] = -1;
		if (!(cfg->namespaces & namespaces[i].flag))
			continue;
		snprintf(path, sizeof(path), "ns/%s", namespaces[i].name);
		t->nsfd[i] = openat(procfd, path, O_RDONLY | O_CLOEXEC);
		if (t->nsfd[i] < 0)
			fatal_errno("open %s namespace of process %u", namespaces[i].name, cfg->pid);
		snprintf(path, sizeof(path), "/proc/self/ns/%s", namespaces[i].name);
		if (fstat(t->nsfd[i], &theirs) < 0)
			fatal_errno("stat %s namespace of process %u", namespaces[i].name, cfg->pid);
		if (stat(path, &ours) < 0)
			fatal_errno("stat %s", path);
		if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino)
			fatal(NSENTER_EXIT_SETUP,
			      "process %u shares our %s namespace; refusing to run outside a container",
			      cfg->pid, namespaces[i].name);
	}

	t->rootfd = openat(procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->rootfd < 0)
		fatal_errno("open root of process %u", cfg->pid);

	t->cgfd = calloc(cfg->ncgroups + 1, sizeof(int));
	if (t->cgfd == NULL)
		fatal(NSENTER_EXIT_SETUP, "out of memory");
	for (i = 0; i < cfg->ncgroups; i++) {
		int dirfd = open(cfg->cgroups[i], O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (dirfd < 0)
			fatal_errno("open %s", cfg->cgroups[i]);
		if (fstatfs(dirfd, &sfs) < 0)
			fatal_errno("statfs %s", cfg->cgroups[i]);
		if (sfs.f_type != CGROUP_SUPER_MAGIC && sfs.f_type != CGROUP2_SUPER_MAGIC)
			fatal(NSENTER_EXIT_SETUP, "%s is not on a cgroup filesystem", cfg->cgroups[i]);
		/* v1: "tasks", see join() */
		t->cgfd[i] = openat(dirfd, sfs.f_type == CGROUP_SUPER_MAGIC ? "tasks" : "cgroup.procs",
				    O_WRONLY | O_CLOEXEC);
		if (t->cgfd[i] < 0)
			fatal_errno("open %s/%s", cfg->cgroups[i],
				    sfs.f_type == CGROUP_SUPER_MAGIC ? "tasks" : "cgroup.procs");
		close(dirfd);
	}

	start = read_start_time(procfd, cfg->pid);
	if (start != cfg->start_time)
		fatal(NSENTER_EXIT_SETUP,
		      "process %u started at %llu, not at %llu: it is not the container's process",
		      cfg->pid, (unsigned long long)start, (unsigned long long)cfg->start_time);
	close(procfd);
}

/* join moves this process into the container's cgroups, then its namespaces.
 * "0" names the writer itself. On cgroup v1 it goes to "tasks": moving the
 * calling thread, which is the whole process here (no Go runtime, one thread),
 * spares the kernel the global write lock that moving a process through
 * cgroup.procs takes, a full RCU grace period (~10 ms). The v2 cgroup, which
 * has no such file, the process was cloned into (see container.ExecCommand). */
static void join(const struct nsenter_config *cfg, struct target *t)
{
	size_t i;
	ssize_t k;

	for (i = 0; i < cfg->ncgroups; i++) {
		k = write(t->cgfd[i], "0", 1);
		if (k != 1) {
			if (k >= 0)
				errno = EIO;
			fatal_errno("join cgroup %s", cfg->cgroups[i]);
		}
		close(t->cgfd[i]);
	}

	for (i = 0; i < NNAMESPACES; i++) {
		if (t->nsfd[i] < 0)
			continue;
		if (setns(t->nsfd[i], namespaces[i].nstype) < 0)
			fatal_errno("join %s namespace of process %u", namespaces[i].name, cfg->pid);
		close(t->nsfd[i]);
	}

	/* setns(CLONE_NEWNS) put us at the namespace's root mount; use the
	 * target's own root, which differs if it chroot'ed instead of pivot_root. */
	if (fchdir(t->rootfd) < 0)
		fatal_errno("enter root of process %u", cfg->pid);
	if (chroot(".") < 0)
		fatal_errno("chroot to root of process %u", cfg->pid);
	close(t->rootfd);
}

/* close_from closes every fd from low up: close_range (Linux 5.9), or
 * one by one up to the fd limit. */
static void close_from(int low)
{
	struct rlimit rl;
	long fd, max = 65536;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)low, ~0U, 0U) == 0)
		return;
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max)
		max = (long)rl.rlim_cur;
	for (fd = low; fd < max; fd++)
		close((int)fd);
}

/* close_extra_fds leaves the command only stdin, stdout and stderr, so no
 * host file can leak into the container. The detach report pipe (close-on-
 * exec) stays open until execve, which closes it. */
static void close_extra_fds(void)
{
	int fd;

	if (report_fd < 0) {
		close_from(3);
		return;
	}
	for (fd = 3; fd < report_fd; fd++)
		close(fd);
	close_from(report_fd + 1);
}

static const char *env_get(char **env, const char *key)
{
	size_t n = strlen(key);

	for (; *env != NULL; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* exec_failed reports why file could not be run and exits like docker. */
__attribute__((noreturn)) static void exec_failed(const char *file, int err)
{
	/* The usual reasons in the words the Go side uses everywhere else. */
	const char *why = err == ENOENT ? "no such file or directory"
			: err == ENOTDIR ? "not a directory"
			: err == EACCES ? "permission denied"
			: err == ENOEXEC ? "exec format error"
			: strerror(err);

	if (err == ENOENT || err == ENOTDIR)
		fatal(NSENTER_EXIT_NOT_FOUND, "%s: %s", file, why);
	fatal(NSENTER_EXIT_CANNOT_RUN, "%s: %s", file, why);
}

/* exec_command runs args[0] with execve. A name without '/' is looked up in
 * PATH from the command's environment (the host's PATH is never used; empty
 * elements are skipped rather than meaning the current directory). Like
 * execvp, a candidate that exists but is not executable is remembered and
 * the search goes on; unlike glibc's execvp, a file that is not a valid
 * executable (ENOEXEC) is never handed to /bin/sh. */
__attribute__((noreturn)) static void exec_command(const struct nsenter_config *cfg)
{
	const char *file = cfg->args[0], *path, *p, *colon;
	char candidate[4096];
	int denied = 0;
	size_t dirlen, filelen = strlen(file);

	if (strchr(file, '/') != NULL) {
		execve(file, cfg->args, cfg->env);
		exec_failed(file, errno);
	}

	path = env_get(cfg->env, "PATH");
	if (path == NULL)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path; *p != '\0'; p = *colon ? colon + 1 : colon) {
		colon = strchrnul(p, ':');
		dirlen = (size_t)(colon - p);
		if (dirlen == 0 || dirlen + 1 + filelen >= sizeof(candidate))
			continue;
		memcpy(candidate, p, dirlen);
		candidate[dirlen] = '/';
		memcpy(candidate + dirlen + 1, file, filelen + 1);
		execve(candidate, cfg->args, cfg->env);
		switch (errno) {
		case ENOENT:
		case ENOTDIR:
		case ESTALE:
		case ENODEV:
		case ETIMEDOUT:
			continue;
		case EACCES:
			denied = 1;
			continue;
		default:
			exec_failed(candidate, errno);
		}
	}
	if (denied)
		exec_failed(file, EACCES);
	fatal(NSENTER_EXIT_NOT_FOUND, "%s: executable file not found in $PATH", file);
}

static void load_filter(const struct nsenter_config *cfg)
{
	struct sock_fprog prog = {.len = (unsigned short)cfg->nfilter, .filter = cfg->filter};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, cfg->seccomp_flags, &prog) < 0)
		fatal_errno("load the seccomp filter");
}

static void set_caps(const struct nsenter_config *cfg)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	int i;

	for (i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(cfg->cap_effective >> (32 * i));
		data[i].permitted = (uint32_t)(cfg->cap_permitted >> (32 * i));
		data[i].inheritable = (uint32_t)(cfg->cap_inheritable >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fatal_errno("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    !(errno == EINVAL && cfg->cap_ambient == 0))
		fatal_errno("clear the ambient capabilities");
	for (i = 0; i < 64; i++)
		if ((cfg->cap_ambient >> i) & 1)
			if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
				fatal_errno("raise ambient capability %d", i);
}

/*
 * drop_privileges takes on the container's restrictions, in runc's order:
 *   1. reduce the bounding set (needs CAP_SETPCAP, still held);
 *   2. without no_new_privs, load the seccomp filter now: that needs
 *      CAP_SYS_ADMIN, which step 4 may drop. The filter must then allow the
 *      calls below, as docker's default profile does;
 *   3. set groups, gid and uid (raw syscalls: this process has one thread),
 *      keeping the permitted set across the uid change (PR_SET_KEEPCAPS);
 *   4. set the effective, permitted, inheritable and ambient sets;
 *   5. set no_new_privs and, with it, load the filter as the very last step.
 */
static void drop_privileges(const struct nsenter_config *cfg)
{
	int caps = (cfg->flags & NSENTER_FLAG_CAPS) != 0;
	int nnp = (cfg->flags & NSENTER_FLAG_NNP) != 0;
	int filter = (cfg->flags & NSENTER_FLAG_SECCOMP) != 0;
	int c, pdeath = 0;

	/* The kernel clears the parent-death signal when the ids change: it is set
	 * again after them (should the creator die in between, the container
	 * outlives it, as it would without one). Read before any filter loads. */
	if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) < 0)
		fatal_errno("prctl(PR_GET_PDEATHSIG)");
	if (caps)
		for (c = 0; c < 64; c++) {
			if ((cfg->cap_bounding >> c) & 1)
				continue;
			/* EINVAL: the kernel has no capability c (beyond cap_last_cap). */
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				fatal_errno("drop capability %d from the bounding set", c);
		}
	if (filter && !nnp)
		load_filter(cfg);
	if (cfg->flags & NSENTER_FLAG_CREDS) {
		if (caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			fatal_errno("prctl(PR_SET_KEEPCAPS)");
		if (syscall(SYS_setgroups, cfg->ngroups, cfg->groups) < 0)
			fatal_errno("setgroups");
		if (syscall(SYS_setresgid, cfg->gid, cfg->gid, cfg->gid) < 0)
			fatal_errno("setresgid %u", cfg->gid);
		if (syscall(SYS_setresuid, cfg->uid, cfg->uid, cfg->uid) < 0)
			fatal_errno("setresuid %u", cfg->uid);
		if (caps && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			fatal_errno("prctl(PR_SET_KEEPCAPS)");
		if (pdeath != 0 && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) < 0)
			fatal_errno("prctl(PR_SET_PDEATHSIG)");
	}
	if (caps)
		set_caps(cfg);
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal_errno("prctl(PR_SET_NO_NEW_PRIVS)");
	if (filter && nnp)
		load_filter(cfg);
}

__attribute__((noreturn)) static void child(const struct nsenter_config *cfg, const sigset_t *mask,
					    int nullfd)
{
	if (sigprocmask(SIG_SETMASK, mask, NULL) < 0)
		fatal_errno("restore signal mask");
	if (cfg->flags & NSENTER_FLAG_TTY) {
		if (setsid() < 0)
			fatal_errno("setsid");
		if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
			fatal_errno("make stdin the controlling terminal");
	} else if (cfg->flags & NSENTER_FLAG_DETACH) {
		/* The command leaves the caller's session and output: errors go
		 * through the report pipe, so stdout and stderr become the host's
		 * /dev/null, opened before joining (the container's could be
		 * anything, a FIFO that blocks for one). */
		if (dup2(nullfd, STDOUT_FILENO) < 0 || dup2(nullfd, STDERR_FILENO) < 0)
			fatal_errno("redirect to /dev/null");
		if (setsid() < 0)
			fatal_errno("setsid");
	}
	nsenter_become(cfg);
}

/*
 * wait_child relays signals and returns the child's exit code.
 *
 * Without a tty the child shares our process group, so a signal the kernel
 * sends to the whole group (^C, ^\ on the caller's terminal, hang-up) reaches
 * it directly; relaying it too would deliver it twice (a second SIGINT makes
 * many programs skip their graceful shutdown). Such signals carry si_code
 * SI_KERNEL and are not relayed, as sudo does. With a tty the child leads its
 * own session and gets nothing from our group, so everything is relayed.
 */
static int wait_child(const struct nsenter_config *cfg, pid_t pid, const sigset_t *set)
{
	struct signalfd_siginfo si;
	ssize_t k;
	int sfd, status;
	pid_t w;

	sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0) {
		int saved = errno;
		kill(pid, SIGKILL);
		errno = saved;
		fatal_errno("signalfd");
	}
	for (;;) {
		k = read(sfd, &si, sizeof(si));
		if (k < 0 && errno == EINTR)
			continue;
		if (k != sizeof(si)) {
			int saved = k < 0 ? errno : EIO;
			kill(pid, SIGKILL);
			errno = saved;
			fatal_errno("read signalfd");
		}
		if (si.ssi_signo != SIGCHLD) {
			if ((cfg->flags & NSENTER_FLAG_TTY) || si.ssi_code != SI_KERNEL)
				kill(pid, (int)si.ssi_signo);
			continue;
		}
		for (;;) {
			w = waitpid(pid, &status, WNOHANG);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				fatal_errno("wait for the command");
			break;
		}
		if (w == 0)
			continue;
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
	}
}

/*
 * wait_started is the detached parent's wait: 0 once the child's execve has
 * closed the report pipe empty, else the failure code the child sent, whose
 * message goes to our stderr (that child is reaped; a running command is
 * left to the container's init).
 */
static int wait_started(pid_t pid, int rep[2])
{
	char buf[1024];
	size_t n = 0;
	ssize_t k;
	int status;

	close(rep[1]);
	for (;;) {
		k = read(rep[0], buf + n, sizeof(buf) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			kill(pid, SIGKILL);
			fatal_errno("read the detach report");
		}
		if (k == 0 || (n += (size_t)k) == sizeof(buf))
			break;
	}
	if (n == 0)
		return 0; /* execve closed the pipe: the command runs */
	if (n > 1 && write(STDERR_FILENO, buf + 1, n - 1) < 0) {
		/* nowhere left to say it; the exit code still tells */
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return (unsigned char)buf[0];
}

__attribute__((noreturn)) static void run(const char *fdstr)
{
	struct nsenter_config cfg;
	struct target t;
	unsigned char *buf;
	char err[256];
	sigset_t set, old;
	size_t len, i;
	pid_t pid;
	int fd, nullfd = -1, rep[2] = {-1, -1};

	fd = nsenter_parse_fd(fdstr);
	if (fd < 0)
		fatal(NSENTER_EXIT_SETUP, "%s=%.20s is not a file descriptor number", NSENTER_ENV,
		      fdstr);
	buf = read_config(fd, &len);
	if (nsenter_decode(buf, len, &cfg, err, sizeof(err)) < 0)
		fatal(NSENTER_EXIT_SETUP, "invalid config: %s", err);
	free(buf);

	/* Non-dumpable: processes in the container cannot open /proc/PID/exe
	 * (the host binary) of our child before it execs, nor ptrace it, unless
	 * they hold CAP_SYS_PTRACE. execve resets this for the command. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fatal_errno("prctl(PR_SET_DUMPABLE)");

	if (cfg.flags & NSENTER_FLAG_DETACH) {
		nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (nullfd < 0)
			fatal_errno("open /dev/null");
	}
	open_target(&cfg, &t);
	join(&cfg, &t);

	/* Block the relayed signals and SIGCHLD before forking, so none is lost
	 * between fork and signalfd; the child restores the old mask. */
	sigemptyset(&set);
	for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &old) < 0)
		fatal_errno("block signals");

	if (cfg.flags & NSENTER_FLAG_DETACH) {
		if (pipe2(rep, O_CLOEXEC) < 0)
			fatal_errno("detach report pipe");
	}
	pid = fork();
	if (pid < 0)
		fatal_errno("fork into the PID namespace of process %u", cfg.pid);
	if (pid == 0) {
		if (cfg.flags & NSENTER_FLAG_DETACH) {
			close(rep[0]);
			report_fd = rep[1];
		}
		child(&cfg, &old, nullfd);
	}
	if (cfg.flags & NSENTER_FLAG_DETACH)
		_exit(wait_started(pid, rep));
	_exit(wait_child(&cfg, pid, &set));
}

/* What init.c shares (see nsenter.h). */

void nsenter_set_report(int fd, const char *prefix)
{
	report_fd = fd;
	report_prefix = prefix;
}

void nsenter_die(int code, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(code, errnum, fmt, ap);
	va_end(ap);
	_exit(code);
}

void nsenter_become(const struct nsenter_config *cfg)
{
	const char *cwd = cfg->cwd[0] != '\0' ? cfg->cwd : "/";
	sigset_t none;
	int retry = 0, sig;

	/* The command starts with every signal at its default and none blocked,
	 * whatever its creator ignored (a detached container's watcher ignores
	 * SIGTERM and SIGHUP; a shell cannot trap what it inherits ignored). */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL); /* EINVAL for the libc-reserved ones: fine */
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		fatal_errno("unblock signals");

	/* Enter the working directory as root or, if root may not (a directory
	 * on a root-squashed volume), as the user once it is set, as runc does. */
	if (chdir(cwd) < 0) {
		if (errno != EACCES && errno != EPERM)
			fatal_errno("working directory %s", cwd);
		retry = 1;
	}
	close_extra_fds();
	drop_privileges(cfg);
	if (retry && chdir(cwd) < 0)
		fatal_errno("working directory %s", cwd);
	exec_command(cfg);
}

void nsenter_constructor(void)
{
	const char *v = getenv(NSENTER_ENV);

	if (v == NULL)
		return;
	run(v);
}
