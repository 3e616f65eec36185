/*
 * decode.c: strict parsers for the fd number, the config message and the
 * /proc/PID/stat line. Nothing here has side effects besides malloc.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsenter.h"

int nsenter_parse_fd(const char *s)
{
	long v = 0;
	size_t i, n;

	if (s == NULL)
		return -1;
	n = strlen(s);
	if (n == 0 || n > 7 || s[0] == '0')
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 3 || v > NSENTER_MAX_FD)
		return -1;
	return (int)v;
}

struct reader {
	const unsigned char *p;
	size_t left;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int get_bytes(struct reader *r, size_t n, const unsigned char **out, const char *what)
{
	if (n > r->left)
		return fail(r, "truncated at %s", what);
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int get_u32(struct reader *r, uint32_t *v, const char *what)
{
	const unsigned char *b = NULL;

	if (get_bytes(r, 4, &b, what) < 0)
		return -1;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 0;
}

static int get_u64(struct reader *r, uint64_t *v, const char *what)
{
	uint32_t lo, hi;

	if (get_u32(r, &lo, what) < 0 || get_u32(r, &hi, what) < 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

static int get_string(struct reader *r, size_t max, char **out, const char *what)
{
	const unsigned char *b = NULL;
	uint32_t n;
	char *s;

	if (get_u32(r, &n, what) < 0)
		return -1;
	if (n > max)
		return fail(r, "%s: length %u exceeds the limit of %zu", what, n, max);
	if (get_bytes(r, n, &b, what) < 0)
		return -1;
	if (memchr(b, '\0', n) != NULL)
		return fail(r, "%s: contains a NUL byte", what);
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return fail(r, "%s: out of memory", what);
	memcpy(s, b, n);
	s[n] = '\0';
	*out = s;
	return 0;
}

static int get_list(struct reader *r, size_t maxcount, size_t maxlen, char ***out, size_t *count,
		    const char *what)
{
	uint32_t n, i;
	char **list;

	if (get_u32(r, &n, what) < 0)
		return -1;
	if (n > maxcount)
		return fail(r, "%s: %u entries exceed the limit of %zu", what, n, maxcount);
	/* Every entry needs at least its 4-byte length: refuse counts the data cannot hold
	 * before allocating for them. */
	if ((size_t)n > r->left / 4)
		return fail(r, "truncated at %s", what);
	list = calloc((size_t)n + 1, sizeof(char *));
	if (list == NULL)
		return fail(r, "%s: out of memory", what);
	for (i = 0; i < n; i++)
		if (get_string(r, maxlen, &list[i], what) < 0)
			return -1;
	*out = list;
	*count = n;
	return 0;
}

/* is_clean_abs reports whether p is absolute and already in the form Go's
 * filepath.Clean returns: no empty, "." or ".." components, no trailing '/'. */
static int is_clean_abs(const char *p)
{
	const char *s, *e;
	size_t n;

	if (p[0] != '/')
		return 0;
	if (p[1] == '\0')
		return 1;
	for (s = p + 1;; s = e + 1) {
		e = strchr(s, '/');
		n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		if (e == NULL)
			return 1;
	}
}

/* (uint32_t)-1 means "unchanged" to setresuid and friends: never an id. */
#define UNSET_ID UINT32_MAX

static int get_creds(struct reader *r, struct nsenter_config *cfg)
{
	uint32_t n, i;

	if (get_u32(r, &cfg->uid, "uid") < 0 || get_u32(r, &cfg->gid, "gid") < 0)
		return -1;
	if (cfg->uid == UNSET_ID || cfg->gid == UNSET_ID)
		return fail(r, "uid or gid %u is reserved", UNSET_ID);
	if (get_u32(r, &n, "groups") < 0)
		return -1;
	if (n > NSENTER_MAX_GROUPS)
		return fail(r, "groups: %u entries exceed the limit of %d", n, NSENTER_MAX_GROUPS);
	if ((size_t)n > r->left / 4)
		return fail(r, "truncated at groups");
	cfg->groups = calloc((size_t)n + 1, sizeof(uint32_t));
	if (cfg->groups == NULL)
		return fail(r, "groups: out of memory");
	for (i = 0; i < n; i++) {
		if (get_u32(r, &cfg->groups[i], "groups") < 0)
			return -1;
		if (cfg->groups[i] == UNSET_ID)
			return fail(r, "group %u is reserved", UNSET_ID);
	}
	cfg->ngroups = n;
	return 0;
}

static int get_caps(struct reader *r, struct nsenter_config *cfg)
{
	if (get_u64(r, &cfg->cap_bounding, "caps") < 0 || get_u64(r, &cfg->cap_effective, "caps") < 0 ||
	    get_u64(r, &cfg->cap_permitted, "caps") < 0 || get_u64(r, &cfg->cap_inheritable, "caps") < 0 ||
	    get_u64(r, &cfg->cap_ambient, "caps") < 0)
		return -1;
	if (cfg->cap_effective & ~cfg->cap_permitted)
		return fail(r, "effective capabilities not within permitted");
	if (cfg->cap_ambient & ~(cfg->cap_permitted & cfg->cap_inheritable))
		return fail(r, "ambient capabilities not within permitted and inheritable");
	return 0;
}

static int get_filter(struct reader *r, struct nsenter_config *cfg)
{
	const unsigned char *b = NULL;
	uint32_t n, i;

	if (get_u32(r, &cfg->seccomp_flags, "seccomp flags") < 0)
		return -1;
	if (cfg->seccomp_flags & ~NSENTER_SECCOMP_FLAGS_ALL)
		return fail(r, "unknown seccomp flags 0x%x", cfg->seccomp_flags);
	if (get_u32(r, &n, "seccomp filter") < 0)
		return -1;
	if (n == 0 || n > NSENTER_MAX_FILTER)
		return fail(r, "seccomp filter of %u instructions (want 1 to %d)", n, NSENTER_MAX_FILTER);
	if (get_bytes(r, (size_t)n * 8, &b, "seccomp filter") < 0)
		return -1;
	cfg->filter = calloc(n, sizeof(struct sock_filter));
	if (cfg->filter == NULL)
		return fail(r, "seccomp filter: out of memory");
	for (i = 0; i < n; i++, b += 8) {
		cfg->filter[i].code = (uint16_t)(b[0] | b[1] << 8);
		cfg->filter[i].jt = b[2];
		cfg->filter[i].jf = b[3];
		cfg->filter[i].k = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
	}
	cfg->nfilter = n;
	return 0;
}

int nsenter_decode(const unsigned char *buf, size_t len, struct nsenter_config *cfg, char *err,
		   size_t errlen)
{
	struct reader r = {buf, len, err, errlen};
	const unsigned char *h = NULL;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	if (len > NSENTER_MAX_CONFIG)
		return fail(&r, "%zu bytes exceed the limit of %d", len, NSENTER_MAX_CONFIG);
	if (get_bytes(&r, NSENTER_HEADER_SIZE, &h, "header") < 0)
		return -1;
	if (memcmp(h, NSENTER_MAGIC, 4) != 0)
		return fail(&r, "bad magic");
	if (h[4] != NSENTER_VERSION)
		return fail(&r, "unsupported version %u", h[4]);
	cfg->flags = h[5];
	if (cfg->flags & ~NSENTER_FLAGS_ALL)
		return fail(&r, "unknown flags 0x%x", cfg->flags);
	cfg->namespaces = (unsigned)h[6] | (unsigned)h[7] << 8;
	if (cfg->namespaces & ~NSENTER_NS_ALL)
		return fail(&r, "unknown namespaces 0x%x", cfg->namespaces);
	if (!(cfg->namespaces & NSENTER_NS_MNT))
		return fail(&r, "the mount namespace is required");
	cfg->pid = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
	if (cfg->pid < 1 || cfg->pid > NSENTER_MAX_PID)
		return fail(&r, "pid %u out of range", cfg->pid);
	cfg->start_time = 0;
	for (i = 0; i < 8; i++)
		cfg->start_time |= (uint64_t)h[12 + i] << (8 * i);
	if (cfg->start_time == 0)
		return fail(&r, "start time is zero");

	if (get_string(&r, NSENTER_MAX_PATH, &cfg->cwd, "cwd") < 0)
		return -1;
	if (cfg->cwd[0] != '\0' && cfg->cwd[0] != '/')
		return fail(&r, "cwd %s is not absolute", cfg->cwd);

	if (get_list(&r, NSENTER_MAX_CGROUPS, NSENTER_MAX_PATH, &cfg->cgroups, &cfg->ncgroups,
		     "cgroup dirs") < 0)
		return -1;
	for (i = 0; i < cfg->ncgroups; i++)
		if (!is_clean_abs(cfg->cgroups[i]))
			return fail(&r, "cgroup dir %s is not a clean absolute path", cfg->cgroups[i]);

	if (get_list(&r, NSENTER_MAX_ENV, NSENTER_MAX_STRING, &cfg->env, &cfg->nenv, "env") < 0)
		return -1;
	for (i = 0; i < cfg->nenv; i++) {
		const char *eq = strchr(cfg->env[i], '=');
		if (eq == NULL || eq == cfg->env[i])
			return fail(&r, "env entry %zu is not KEY=VALUE", i);
	}

	if (get_list(&r, NSENTER_MAX_ARGS, NSENTER_MAX_STRING, &cfg->args, &cfg->nargs, "args") < 0)
		return -1;
	if (cfg->nargs == 0)
		return fail(&r, "no command");
	if (cfg->args[0][0] == '\0')
		return fail(&r, "empty command name");

	if ((cfg->flags & NSENTER_FLAG_CREDS) && get_creds(&r, cfg) < 0)
		return -1;
	if ((cfg->flags & NSENTER_FLAG_CAPS) && get_caps(&r, cfg) < 0)
		return -1;
	if ((cfg->flags & NSENTER_FLAG_SECCOMP) && get_filter(&r, cfg) < 0)
		return -1;

	if (r.left != 0)
		return fail(&r, "%zu trailing bytes", r.left);
	return 0;
}

int nsenter_parse_start_time(const char *stat, size_t len, uint64_t *out)
{
	const char *p = NULL, *end = stat + len;
	uint64_t v = 0;
	size_t i;
	int field, digits = 0;

	/* Field 1 is the pid, field 2 "(comm)"; comm may hold anything but is
	 * at most 64 bytes, and nothing after it contains ')'. */
	if (len == 0 || memchr(stat, '(', len) == NULL)
		return -1;
	for (i = len; i > 0; i--)
		if (stat[i - 1] == ')') {
			p = stat + i;
			break;
		}
	if (p == NULL)
		return -1;
	/* p is just after ')'; fields 3..22 follow, each preceded by one space. */
	for (field = 3; field <= 22; field++) {
		if (p >= end || *p != ' ')
			return -1;
		p++;
		if (field < 22) {
			const char *f = p;
			while (p < end && *p != ' ' && *p != '\n')
				p++;
			if (p == f)
				return -1; /* empty field */
			continue;
		}
		for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
			if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return -1;
			v = v * 10 + (uint64_t)(*p - '0');
		}
	}
	if (digits == 0 || (p < end && *p != ' ' && *p != '\n'))
		return -1;
	*out = v;
	return 0;
}

static int get_clean_list(struct reader *r, char ***out, size_t *count, const char *what)
{
	size_t i;

	if (get_list(r, NSENTER_INIT_MAX_PATHS, NSENTER_MAX_PATH, out, count, what) < 0)
		return -1;
	for (i = 0; i < *count; i++)
		if (!is_clean_abs((*out)[i]))
			return fail(r, "%s: %s is not a clean absolute path", what, (*out)[i]);
	return 0;
}

int nsenter_decode_init(const unsigned char *buf, size_t len, struct nsenter_init_config *cfg,
			char *err, size_t errlen)
{
	struct reader r = {buf, len, err, errlen};
	const unsigned char *h = NULL;
	uint32_t n, i;

	memset(cfg, 0, sizeof(*cfg));
	if (len > NSENTER_MAX_CONFIG)
		return fail(&r, "%zu bytes exceed the limit of %d", len, NSENTER_MAX_CONFIG);
	if (get_bytes(&r, NSENTER_INIT_HEADER_SIZE, &h, "header") < 0)
		return -1;
	if (memcmp(h, NSENTER_INIT_MAGIC, 4) != 0)
		return fail(&r, "bad magic");
	if (h[4] != NSENTER_INIT_VERSION)
		return fail(&r, "unsupported version %u", h[4]);
	cfg->flags = h[5];
	if (cfg->flags & ~NSENTER_INIT_FLAGS_ALL)
		return fail(&r, "unknown flags 0x%x", cfg->flags);
	if (h[6] != 0 || h[7] != 0)
		return fail(&r, "reserved header bytes are not zero");

	if (get_string(&r, NSENTER_MAX_PATH, &cfg->overlay, "overlay") < 0)
		return -1;
	if (cfg->overlay[0] == '\0')
		return fail(&r, "no overlay mount data");
	if (get_string(&r, NSENTER_MAX_PATH, &cfg->root, "root") < 0)
		return -1;
	if (!is_clean_abs(cfg->root) || strcmp(cfg->root, "/") == 0)
		return fail(&r, "root %s is not a clean absolute path below /", cfg->root);
	if (get_string(&r, NSENTER_INIT_MAX_HOSTNAME, &cfg->hostname, "hostname") < 0)
		return -1;
	if (cfg->hostname[0] == '\0')
		return fail(&r, "empty hostname");
	if (get_string(&r, NSENTER_MAX_PATH, &cfg->cwd, "cwd") < 0)
		return -1;
	if (cfg->cwd[0] != '\0' && !is_clean_abs(cfg->cwd))
		return fail(&r, "cwd %s is not a clean absolute path", cfg->cwd);
	if (get_u32(&r, &n, "cgroups") < 0)
		return -1;
	if (n > NSENTER_MAX_CGROUPS)
		return fail(&r, "cgroups: %u entries exceed the limit of %d", n, NSENTER_MAX_CGROUPS);
	cfg->cgroups = calloc((size_t)n + 1, sizeof(struct nsenter_cgroup));
	if (cfg->cgroups == NULL)
		return fail(&r, "cgroups: out of memory");
	for (i = 0; i < n; i++) {
		struct nsenter_cgroup *cg = &cfg->cgroups[i];
		char *abs;

		if (get_string(&r, NSENTER_MAX_PATH, &cg->hierarchy, "cgroup hierarchy") < 0 ||
		    get_string(&r, NSENTER_MAX_PATH, &cg->path, "cgroup path") < 0)
			return -1;
		if (!is_clean_abs(cg->hierarchy))
			return fail(&r, "cgroup hierarchy %s is not a clean absolute path", cg->hierarchy);
		if (asprintf(&abs, "/%s", cg->path) < 0)
			return fail(&r, "cgroups: out of memory");
		if (cg->path[0] == '\0' || !is_clean_abs(abs)) {
			free(abs);
			return fail(&r, "cgroup path %s is not a clean relative path", cg->path);
		}
		free(abs);
	}
	cfg->ncgroups = n;
	if (get_clean_list(&r, &cfg->masked, &cfg->nmasked, "masked paths") < 0 ||
	    get_clean_list(&r, &cfg->readonly, &cfg->nreadonly, "read-only paths") < 0)
		return -1;

	if (get_u32(&r, &n, "volumes") < 0)
		return -1;
	if (n > NSENTER_INIT_MAX_VOLUMES)
		return fail(&r, "volumes: %u entries exceed the limit of %d", n, NSENTER_INIT_MAX_VOLUMES);
	if ((size_t)n > r.left / 12)
		return fail(&r, "truncated at volumes");
	cfg->volumes = calloc((size_t)n + 1, sizeof(struct nsenter_volume));
	if (cfg->volumes == NULL)
		return fail(&r, "volumes: out of memory");
	for (i = 0; i < n; i++) {
		struct nsenter_volume *v = &cfg->volumes[i];
		uint32_t flags;

		if (get_string(&r, NSENTER_MAX_PATH, &v->source, "volume source") < 0 ||
		    get_string(&r, NSENTER_MAX_PATH, &v->target, "volume target") < 0 ||
		    get_u32(&r, &flags, "volume flags") < 0)
			return -1;
		if (v->source[0] != '/')
			return fail(&r, "volume source %s is not absolute", v->source);
		if (!is_clean_abs(v->target) || strcmp(v->target, "/") == 0)
			return fail(&r, "volume target %s is not a clean absolute path below /", v->target);
		if (flags & ~NSENTER_VOLUME_FLAGS_ALL)
			return fail(&r, "volume %s: unknown flags 0x%x", v->target, flags);
		v->flags = flags;
	}
	cfg->nvolumes = n;
	if (r.left != 0)
		return fail(&r, "%zu trailing bytes", r.left);
	return 0;
}
