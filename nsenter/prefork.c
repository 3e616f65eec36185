/*
 * prefork.c: the helper that makes a new container's namespaces while the Go
 * runtime of the process that runs it is still starting.
 *
 * A `run` spends its first milliseconds starting the Go runtime; only then
 * could it clone the container's init into new namespaces, which the init
 * then exec'd into this binary again to reach init.c. Instead, the
 * constructor here forks a helper before the Go runtime starts, when the
 * command line runs a container in this process (nsenter_prefork_wanted):
 *
 *   1. The helper unshares new mount, UTS, IPC and network namespaces, and a
 *      PID namespace for its children, while the runtime starts.
 *   2. Go (prefork.go) sends one request over a socket: the init's five fds
 *      and flags, and the cgroup v2 directory to clone it into, if any.
 *   3. The helper clones the init with CLONE_PARENT: the init is the
 *      creator's child, as if the creator had cloned it, and PID 1 of the new
 *      PID namespace. It replies with the init's pid (or -errno) and exits.
 *   4. The init arranges its fds, starts a session and runs init.c's body:
 *      no exec, no second start of the C library.
 *
 * A process that never sends a request closes the socket, or exits: the
 * helper reads EOF (or gets SIGKILL, its parent-death signal) and exits, and
 * its namespaces go with it. The helper keeps no fd of the creator's but its
 * end of the socket (stdio becomes /dev/null).
 *
 * Request: u32 magic PREFORK_MAGIC, u32 flags (PREFORK_*), and in the same
 * message 5 fds (stdin, stdout, stderr, the init's config and status fds) or,
 * with PREFORK_CGROUP, 6 (then the cgroup v2 directory). Reply: i32, the
 * init's pid (> 0) or -errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "nsenter.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

#define PREFORK_NS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET)
#define PREFORK_FDS 5

/* The creator's end of the socket and the helper's pid; set once, before the
 * Go runtime starts, and taken once by Go. */
static int prefork_sock = -1;
static pid_t prefork_pid = -1;

int nsenter_prefork_take(int *pid)
{
	int fd = prefork_sock;

	*pid = prefork_pid;
	prefork_sock = -1;
	prefork_pid = -1;
	return fd;
}

/* flag_name returns the name of the flag in arg ("--x=v" or "-x" give x) and
 * its length, or NULL if arg is no flag. */
static const char *flag_name(const char *arg, size_t *len, int *has_value)
{
	const char *eq;

	if (arg[0] != '-' || arg[1] == '\0')
		return NULL;
	arg += arg[1] == '-' ? 2 : 1;
	eq = strchr(arg, '=');
	*len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	*has_value = eq != NULL;
	return arg;
}

static int is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncmp(name, want, len) == 0;
}

/* nsenter_prefork_wanted recognises `fockker [global flags] run ...` without
 * -d (a detached run's container is made by its watcher), and the watcher's
 * own `fockker watch`. Anything it does not know (another global flag, help)
 * gives 0: the creator then clones the init itself, as it always can. A "-d"
 * among the command's own arguments gives 0 too: only slower, never wrong. */
int nsenter_prefork_wanted(int argc, char **argv, int watch)
{
	size_t len;
	int i, has_value;

	for (i = 1; i < argc; i++) {
		const char *name = flag_name(argv[i], &len, &has_value);

		if (name == NULL)
			break;
		if (is(name, len, "state-root") || is(name, len, "image-root")) {
			if (!has_value)
				i++;
		} else if (!is(name, len, "debug")) {
			return 0;
		}
	}
	if (i >= argc)
		return 0;
	if (strcmp(argv[i], "watch") == 0)
		return watch;
	if (strcmp(argv[i], "run") != 0)
		return 0;
	for (i++; i < argc; i++) {
		const char *name = flag_name(argv[i], &len, &has_value);
		const char *value;

		if (strcmp(argv[i], "--") == 0)
			break;
		if (name == NULL)
			continue;
		if (is(name, len, "d") || is(name, len, "detach") || is(name, len, "h") || is(name, len, "help"))
			return 0;
		/* The host's network: namespaces made for nothing, the old path is as fast. */
		if (is(name, len, "net") || is(name, len, "network")) {
			value = has_value ? name + len + 1 : (i + 1 < argc ? argv[i + 1] : "");
			if (strcmp(value, "host") == 0)
				return 0;
		}
	}
	return 1;
}

/* move_fds puts the received fds at 0..4, whatever numbers they came with. */
static int move_fds(const int *fds)
{
	int high[PREFORK_FDS], i;

	/* Copies above 0..4 first, so that no dup2 below replaces a received fd. */
	for (i = 0; i < PREFORK_FDS; i++) {
		high[i] = fcntl(fds[i], F_DUPFD, PREFORK_FDS);
		if (high[i] < 0)
			return -1;
	}
	for (i = 0; i < PREFORK_FDS; i++)
		if (dup2(high[i], i) < 0)
			return -1;
	nsenter_close_from(PREFORK_FDS);
	return 0;
}

/* init_child is the init, just cloned: fds in place, its own session, the
 * terminal on stdin if asked, death with its creator; then init.c's body. */
__attribute__((noreturn)) static void init_child(const int *fds, uint32_t flags)
{
	int sig;

	/* Every signal back at its default, as in an init the creator started. */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL); /* EINVAL for the libc-reserved ones: fine */
	if (move_fds(fds) < 0)
		_exit(NSENTER_EXIT_SETUP);
	nsenter_set_report(NSENTER_INIT_STATUS_FD, "");
	if (setsid() < 0)
		nsenter_die(NSENTER_EXIT_SETUP, errno, "setsid");
	if ((flags & PREFORK_TTY) && ioctl(0, TIOCSCTTY, 0) < 0)
		nsenter_die(NSENTER_EXIT_SETUP, errno, "the terminal on stdin");
	/* Its parent is the creator (CLONE_PARENT). Dying before this line is
	 * covered too: the init then reads EOF where it waits for its config. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		nsenter_die(NSENTER_EXIT_SETUP, errno, "prctl(PR_SET_PDEATHSIG)");
	prctl(PR_SET_NAME, PREFORK_INIT_NAME);
	clearenv();
	nsenter_init_main();
}

/* serve answers the one request (see the top of this file); unshared is
 * unshare's result, reported to the request if it failed. */
static int32_t serve(int sock, int hostnet, int unshared)
{
	char control[CMSG_SPACE(sizeof(int) * (PREFORK_FDS + 1))];
	int fds[PREFORK_FDS + 1], nfds = 0, i;
	uint32_t head[2];
	struct iovec iov = {.iov_base = head, .iov_len = sizeof(head)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			     .msg_controllen = sizeof(control)};
	struct cmsghdr *c;
	struct clone_args args;
	ssize_t n;
	long pid;

	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		_exit(0); /* the creator gave up */
	if (unshared < 0)
		return unshared;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (nfds > PREFORK_FDS + 1)
			nfds = PREFORK_FDS + 1;
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfds);
	}
	if (n != sizeof(head) || head[0] != PREFORK_MAGIC || (msg.msg_flags & MSG_CTRUNC) ||
	    (head[1] & ~(uint32_t)PREFORK_FLAGS_ALL) ||
	    nfds != PREFORK_FDS + ((head[1] & PREFORK_CGROUP) ? 1 : 0))
		return -EINVAL;
	if ((head[1] & PREFORK_HOSTNET) && (hostnet < 0 || setns(hostnet, CLONE_NEWNET) < 0))
		return hostnet < 0 ? -EBADF : -errno;
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_PARENT;
	if (head[1] & PREFORK_CGROUP) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)fds[PREFORK_FDS];
	}
	/* exit_signal stays 0: with CLONE_PARENT the init gets the helper's own,
	 * SIGCHLD to the creator. */
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return -errno;
	if (pid == 0)
		init_child(fds, head[1]);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return (int32_t)pid;
}

/* helper is the forked helper's body (see the top of this file). */
__attribute__((noreturn)) static void helper(int sock, pid_t creator)
{
	int null, hostnet, unshared, sig;
	int32_t reply;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != creator)
		_exit(0);
	/* Only the socket is kept: at fd 3, everything above closed. */
	if (sock != 3 && (dup3(sock, 3, O_CLOEXEC) < 0))
		_exit(0);
	sock = 3;
	nsenter_close_from(4);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(0);
	if (null > 2)
		close(null);
	prctl(PR_SET_NAME, PREFORK_HELPER_NAME);
	/* A signal to the creator's process group (^C on its terminal, `kill %1`,
	 * timeout(1)) is the creator's to handle: it then closes the socket or dies,
	 * and the helper goes with it. The init sets them back to their defaults. */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD)
			signal(sig, SIG_IGN); /* EINVAL for the libc-reserved ones: fine */
	hostnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* Now, while the creator's Go runtime starts: the request comes later. */
	unshared = unshare(PREFORK_NS) < 0 ? -errno : 0;
	reply = serve(sock, hostnet, unshared);
	(void)send(sock, &reply, sizeof(reply), MSG_NOSIGNAL);
	_exit(0);
}

void nsenter_prefork_constructor(int argc, char **argv)
{
	const char *w = getenv(PREFORK_WATCH_ENV);
	int sv[2], lo[2], i;
	pid_t creator, pid;

	if (geteuid() != 0 || !nsenter_prefork_wanted(argc, argv, w != NULL && strcmp(w, "1") == 0))
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	/* Never at 0, 1 or 2, should the creator have started without them. */
	for (i = 0; i < 2; i++) {
		lo[i] = fcntl(sv[i], F_DUPFD_CLOEXEC, 3);
		close(sv[i]);
	}
	if (lo[0] < 0 || lo[1] < 0) {
		if (lo[0] >= 0)
			close(lo[0]);
		if (lo[1] >= 0)
			close(lo[1]);
		return;
	}
	creator = getpid();
	pid = fork();
	if (pid < 0) {
		close(lo[0]);
		close(lo[1]);
		return;
	}
	if (pid == 0) {
		close(lo[0]);
		helper(lo[1], creator);
	}
	close(lo[1]);
	prefork_sock = lo[0];
	prefork_pid = pid;
}

void nsenter_prefork_constructor_proc(void)
{
	static char buf[PREFORK_CMDLINE_MAX];
	static char *argv[PREFORK_ARGS_MAX + 1];
	size_t len = 0, i;
	ssize_t n;
	int fd, argc = 0;

	if (geteuid() != 0)
		return;
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* Cut short (an error, or longer than the buffer: not one of ours to
	 * guess at) or empty: no helper. */
	if (n != 0 || len == 0 || buf[len - 1] != '\0')
		return;
	for (i = 0; i < len; i += strlen(buf + i) + 1) {
		if (argc == PREFORK_ARGS_MAX)
			return;
		argv[argc++] = buf + i;
	}
	argv[argc] = NULL;
	nsenter_prefork_constructor(argc, argv);
}

