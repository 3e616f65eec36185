/*
 * waiter.c: the lean wait of a detached container's watcher (see waiter.go).
 *
 * Runs as an ELF constructor, before the Go runtime, in every fockker
 * process; it returns at once unless _FOCKKER_WAIT_PID is set. Then it waits
 * for that child (the container's init), and execve()s /proc/self/exe as
 * "fockker watch-done" with _FOCKKER_WAIT_STATUS=<raw wait status>, the rest
 * of the environment unchanged. Any failure exits 125 after a message on
 * stderr (the container's log, for a watcher).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what)
{
	fprintf(stderr, "fockker watcher: %s: %s\n", what, strerror(errno));
	_exit(125);
}

void fockker_waiter(void)
{
	const char *v = getenv("_FOCKKER_WAIT_PID");
	char *end, status_var[64];
	char *argv[] = {"fockker", "watch-done", NULL};
	long pid;
	int status;
	pid_t w;

	if (v == NULL)
		return;
	errno = 0;
	pid = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || pid <= 0 || pid > (1L << 22)) {
		errno = EINVAL;
		die("_FOCKKER_WAIT_PID");
	}
	/* The watcher ignores these; keep doing so while waiting. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	do
		w = waitpid((pid_t)pid, &status, 0);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		die("wait for the container");
	if (unsetenv("_FOCKKER_WAIT_PID") < 0)
		die("unsetenv");
	snprintf(status_var, sizeof(status_var), "%d", status);
	if (setenv("_FOCKKER_WAIT_STATUS", status_var, 1) < 0)
		die("setenv");
	execve("/proc/self/exe", argv, environ);
	die("exec fockker watch-done");
}
