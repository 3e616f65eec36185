/*
 * nsenter.h: the C half of package nsenter.
 *
 * The Go side (config.go) encodes a Config into the binary format described
 * below and writes it into a pipe; the constructor in nsenter.c reads it from
 * the fd named by the private environment variable NSENTER_ENV, before the Go
 * runtime starts. Every limit here has a twin in config.go; main.go fails to
 * compile if they differ.
 *
 * Wire format, all integers little-endian:
 *
 *   offset size  field
 *   0      4     magic "FKNS"
 *   4      1     version (NSENTER_VERSION)
 *   5      1     flags (NSENTER_FLAG_*; unknown bits rejected)
 *   6      2     namespaces (NSENTER_NS_*; unknown bits rejected; MNT required)
 *   8      4     target pid, 1..NSENTER_MAX_PID
 *   12     8     start time of the target (field 22 of /proc/PID/stat), != 0
 *   20     ...   cwd          string
 *                cgroup dirs  list
 *                env          list
 *                argv         list
 *                creds        only with NSENTER_FLAG_CREDS:
 *                               u32 uid, u32 gid (neither 0xffffffff),
 *                               u32 count <= NSENTER_MAX_GROUPS, count u32 gids
 *                caps         only with NSENTER_FLAG_CAPS: u64 bounding,
 *                               effective, permitted, inheritable, ambient
 *                               (effective within permitted, ambient within
 *                               permitted and inheritable)
 *                seccomp      only with NSENTER_FLAG_SECCOMP: u32 flags
 *                               (within NSENTER_SECCOMP_FLAGS_ALL), u32 count
 *                               1..NSENTER_MAX_FILTER, count struct sock_filter
 *                               as u16 code, u8 jt, u8 jf, u32 k
 *
 *   string = u32 length, then that many bytes (no NUL inside, no terminator)
 *   list   = u32 count, then count strings
 *
 * The whole message ends exactly after the last section; trailing bytes are
 * an error.
 */
#ifndef FOCKKER_NSENTER_H
#define FOCKKER_NSENTER_H

#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>

#define NSENTER_ENV "_FOCKKER_NSENTER_FD"

/* statfs f_type of the cgroup file systems (linux/magic.h, not always installed). */
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* Exit codes, as docker uses them. */
#define NSENTER_EXIT_SETUP 125    /* anything failed before the command ran */
#define NSENTER_EXIT_CANNOT_RUN 126 /* command found but cannot be executed */
#define NSENTER_EXIT_NOT_FOUND 127  /* command not found */

#define NSENTER_MAGIC "FKNS"
#define NSENTER_VERSION 2
#define NSENTER_HEADER_SIZE 20

#define NSENTER_MAX_CONFIG (1 << 20) /* whole message, bytes */
#define NSENTER_MAX_STRING (128 << 10) /* one env entry or argument (MAX_ARG_STRLEN) */
#define NSENTER_MAX_PATH 4095       /* cwd, cgroup dir */
#define NSENTER_MAX_ARGS 4096
#define NSENTER_MAX_ENV 4096
#define NSENTER_MAX_CGROUPS 32
#define NSENTER_MAX_PID (1 << 22) /* PID_MAX_LIMIT on 64-bit */
#define NSENTER_MAX_FD ((1 << 20) - 1)
#define NSENTER_MAX_GROUPS 65536 /* NGROUPS_MAX */
#define NSENTER_MAX_FILTER 4096  /* BPF_MAXINSNS */

#define NSENTER_FLAG_TTY 0x01u     /* stdin becomes the controlling terminal */
#define NSENTER_FLAG_NNP 0x02u     /* set no_new_privs */
#define NSENTER_FLAG_CREDS 0x04u   /* creds section present: change user */
#define NSENTER_FLAG_CAPS 0x08u    /* caps section present: set capabilities */
#define NSENTER_FLAG_SECCOMP 0x10u /* seccomp section present: load a filter */
#define NSENTER_FLAG_DETACH 0x20u  /* report once the command runs, then leave it */
#define NSENTER_FLAGS_ALL 0x3fu

/* SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW */
#define NSENTER_SECCOMP_FLAGS_ALL 0x6u

#define NSENTER_NS_MNT 0x01u
#define NSENTER_NS_UTS 0x02u
#define NSENTER_NS_IPC 0x04u
#define NSENTER_NS_NET 0x08u
#define NSENTER_NS_PID 0x10u
#define NSENTER_NS_CGROUP 0x20u
#define NSENTER_NS_ALL 0x3fu

struct nsenter_config {
	unsigned flags;
	unsigned namespaces;
	uint32_t pid;
	uint64_t start_time;
	char *cwd;       /* "" means "/" */
	char **cgroups;  /* ncgroups entries, NULL-terminated */
	size_t ncgroups;
	char **env;      /* nenv entries, NULL-terminated, for execve */
	size_t nenv;
	char **args;     /* nargs >= 1 entries, NULL-terminated, for execve */
	size_t nargs;
	/* NSENTER_FLAG_CREDS */
	uint32_t uid, gid;
	uint32_t *groups; /* ngroups entries */
	size_t ngroups;
	/* NSENTER_FLAG_CAPS */
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	/* NSENTER_FLAG_SECCOMP */
	uint32_t seccomp_flags;
	struct sock_filter *filter; /* nfilter entries */
	size_t nfilter;
};

/* nsenter_parse_fd returns the fd number in s, or -1 unless s is a plain
 * decimal number without sign, spaces or leading zeros in 3..NSENTER_MAX_FD. */
int nsenter_parse_fd(const char *s);

/* nsenter_decode fills cfg from buf[0:len] (see the format above). On error it
 * returns -1 and writes the reason into err. Strings are copied. */
int nsenter_decode(const unsigned char *buf, size_t len, struct nsenter_config *cfg,
		   char *err, size_t errlen);

/* nsenter_parse_start_time extracts field 22 of a /proc/PID/stat line. The
 * command name (field 2) may contain spaces and ')', so fields are counted
 * from the last ')'. Returns 0 on success, -1 if the line is malformed. */
int nsenter_parse_start_time(const char *stat, size_t len, uint64_t *out);

/* Shared with init.c, the container init constructor. */

/* nsenter_set_report sends every later error report to fd (one write: a byte
 * with the exit code, then prefix, the message and '\n') instead of stderr. */
void nsenter_set_report(int fd, const char *prefix);

/* nsenter_die reports the message (with strerror(errnum) unless errnum is 0)
 * and exits with code. */
__attribute__((noreturn, format(printf, 3, 4))) void nsenter_die(int code, int errnum,
								  const char *fmt, ...);

/* nsenter_become turns the calling process into cfg's command: working
 * directory, only fds 0-2 (and the report fd, close-on-exec), the container's
 * restrictions, then execve with PATH lookup. It never returns; failures are
 * reported and exit 125, 126 or 127. cfg's pid, start time, namespaces,
 * cgroups, tty and detach fields are not used. */
__attribute__((noreturn)) void nsenter_become(const struct nsenter_config *cfg);

/* nsenter_init_constructor returns at once unless NSENTER_INIT_ENV is set;
 * otherwise it never returns: it builds a new container's root and becomes
 * its first process (see init.c). */
void nsenter_init_constructor(void);

/* nsenter_constructor returns at once unless NSENTER_ENV is set; otherwise it
 * never returns: it runs the configured command and exits with its status. */
void nsenter_constructor(void);

/*
 * The container init (init.c). Its creator starts the binary with
 * NSENTER_INIT_ENV=3 in new namespaces; fd 3 carries messages from the
 * creator, fd 4 (close-on-exec) reports back. Each message on fd 3 is a u32
 * length followed by that many bytes:
 *
 *   1. the root, in the format below: sent once the layer directories exist
 *      (the init may be started before);
 *   2. the command: an nsenter config as above (its pid, start time,
 *      namespaces and cgroup dirs describe the init itself and are not used),
 *      sent once the creator has the container's cgroup and network complete,
 *      which may be before the init reports ready: the init reads it only
 *      after, then joins the cgroups of the root message. EOF instead means
 *      the creator gave up: the init exits 125 without a word.
 *
 * Reports on fd 4: one byte 0 once the root is ready; on any failure one
 * byte with the exit code (125, 126, 127), the reason and '\n'. A successful
 * execve closes fd 4 without a word.
 *
 * Root message, integers little-endian:
 *   0  4  magic "FKIN"
 *   4  1  version (NSENTER_INIT_VERSION)
 *   5  1  flags (NSENTER_INIT_*; unknown bits rejected)
 *   6  2  zero
 *   8  .. overlay     string, the overlay's mount data (lowerdir=...)
 *         root        string, clean absolute path the overlay is mounted on
 *         hostname    string, 1..64 bytes
 *         cwd         string, "" or clean absolute: made if missing
 *         cgroups     u32 count <= NSENTER_MAX_CGROUPS, then each: string
 *                       hierarchy (clean absolute: a cgroup mount, opened
 *                       before pivot_root), string path (clean relative:
 *                       the cgroup in it, which may not exist yet)
 *         masked      list of clean absolute paths (NSENTER_INIT_RESTRICT)
 *         readonly    list of clean absolute paths (NSENTER_INIT_RESTRICT)
 *         volumes     u32 count <= NSENTER_INIT_MAX_VOLUMES, then each:
 *                       string source (absolute host path, must exist),
 *                       string target (clean absolute path in the container),
 *                       u32 flags (NSENTER_VOLUME_*)
 */
#define NSENTER_INIT_ENV "_FOCKKER_INIT_FD"
#define NSENTER_INIT_MAGIC "FKIN"
#define NSENTER_INIT_VERSION 1
#define NSENTER_INIT_HEADER_SIZE 8
#define NSENTER_INIT_CONFIG_FD 3
#define NSENTER_INIT_STATUS_FD 4
#define NSENTER_INIT_MAX_VOLUMES 1024
#define NSENTER_INIT_MAX_PATHS 256
#define NSENTER_INIT_MAX_HOSTNAME 64

#define NSENTER_INIT_TTY 0x01u      /* stdin is a terminal: bind it on /dev/console */
#define NSENTER_INIT_LOOPBACK 0x02u /* bring lo up (a network namespace of its own) */
#define NSENTER_INIT_RESTRICT 0x04u /* read-only /sys, masked and read-only paths */
#define NSENTER_INIT_RO_ROOT 0x08u  /* remount the root read-only */
#define NSENTER_INIT_FLAGS_ALL 0x0fu

#define NSENTER_VOLUME_RO 0x01u
#define NSENTER_VOLUME_FLAGS_ALL 0x01u

struct nsenter_volume {
	char *source, *target;
	unsigned flags;
};

struct nsenter_cgroup {
	char *hierarchy, *path;
};

struct nsenter_init_config {
	unsigned flags;
	char *overlay, *root, *hostname, *cwd;
	struct nsenter_cgroup *cgroups;
	size_t ncgroups;
	char **masked, **readonly;
	size_t nmasked, nreadonly;
	struct nsenter_volume *volumes;
	size_t nvolumes;
};

/* nsenter_decode_init fills cfg from a root message; like nsenter_decode. */
int nsenter_decode_init(const unsigned char *buf, size_t len, struct nsenter_init_config *cfg,
			char *err, size_t errlen);

#endif
