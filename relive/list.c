/*
 * relive/list.c - `relive list`: the kernel's /sys/kernel/livepatch and
 * /proc/PID/patch_state for one process, read from the agent's memory
 * without stopping any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relive.h"

/* A tiny reader for the agent's JSON listing, enough for the plain form. */
struct jcur {
	const char *s;
};

static void skip_ws(struct jcur *c)
{
	while (*c->s == ' ' || *c->s == '\n' || *c->s == '\t' || *c->s == '\r')
		c->s++;
}

/* Finds "key": inside the object starting at obj (not nested deeper) and
 * returns a pointer to its value, or NULL. */
static const char *jfind(const char *obj, const char *key)
{
	int depth = 0;
	bool instr = false;
	size_t kl = strlen(key);
	const char *p;

	for (p = obj; *p; p++) {
		if (instr) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				instr = false;
			continue;
		}
		if (*p == '"') {
			if (depth == 1 && !strncmp(p + 1, key, kl) &&
			    p[1 + kl] == '"' && p[2 + kl] == ':')
				return p + 3 + kl;
			instr = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return NULL;
		}
	}
	return NULL;
}

static void jstr(const char *v, char *out, size_t len)
{
	size_t n = 0;

	if (!v || *v != '"') {
		snprintf(out, len, "%s", v && !strncmp(v, "null", 4) ? "-" : "?");
		return;
	}
	for (v++; *v && *v != '"' && n + 1 < len; v++) {
		if (*v == '\\' && v[1])
			v++;
		out[n++] = *v;
	}
	out[n] = '\0';
}

static bool jtrue(const char *v)
{
	return v && !strncmp(v, "true", 4);
}

/* Iterates over the elements of the array at v: returns the next element
 * start, or NULL at the end. */
static const char *jnext(const char *v, const char **it)
{
	struct jcur c;
	int depth = 0;
	bool instr = false;

	if (!*it) {
		c.s = v + 1;
	} else {
		for (c.s = *it; *c.s; c.s++) {
			if (instr) {
				if (*c.s == '\\' && c.s[1])
					c.s++;
				else if (*c.s == '"')
					instr = false;
				continue;
			}
			if (*c.s == '"')
				instr = true;
			else if (*c.s == '{' || *c.s == '[')
				depth++;
			else if (*c.s == '}' || *c.s == ']') {
				if (--depth == 0) {
					c.s++;
					break;
				}
			}
		}
		skip_ws(&c);
		if (*c.s == ',')
			c.s++;
	}
	skip_ws(&c);
	if (*c.s == ']' || !*c.s)
		return NULL;
	*it = c.s;
	return c.s;
}

static void print_plain(pid_t pid, const struct agent *a, const char *snap)
{
	const char *p = NULL, *o, *f;
	char buf[4096], buf2[4096];
	int npatches = 0;

	printf("process %d: relive agent %s\n", pid, a->c.version);
	if (a->c.trans_active) {
		const char *t = NULL;
		char fn[256], reason[64], detail[256];

		printf("transition: '%s' to %s\n", a->c.trans_patch,
		       a->c.trans_target ? "patched" : "unpatched");
		while (jnext(a->c.pending, &t)) {
			jstr(jfind(t, "function"), fn, sizeof(fn));
			jstr(jfind(t, "reason"), reason, sizeof(reason));
			jstr(jfind(t, "detail"), detail, sizeof(detail));
			printf("  thread %d: %s%s%s%s%s\n",
			       atoi(jfind(t, "tid") ? jfind(t, "tid") : "0"),
			       reason, strcmp(fn, "-") ? " in " : "",
			       strcmp(fn, "-") ? fn : "",
			       strcmp(detail, "?") ? ": " : "",
			       strcmp(detail, "?") ? detail : "");
		}
	}
	while (jnext(snap, &p)) {
		const char *objs = jfind(p, "objects");

		npatches++;
		jstr(jfind(p, "name"), buf, sizeof(buf));
		jstr(jfind(p, "file"), buf2, sizeof(buf2));
		printf("%-20s %-9s stack_order=%d%s%s  %s\n", buf,
		       jtrue(jfind(p, "enabled")) ? "enabled" : "disabled",
		       jfind(p, "stack_order") ? atoi(jfind(p, "stack_order")) : 0,
		       jtrue(jfind(p, "replace")) ? " replace" : "",
		       jtrue(jfind(p, "forced")) ? " forced" : "", buf2);
		for (o = NULL; objs && jnext(objs, &o);) {
			const char *funcs = jfind(o, "funcs");

			jstr(jfind(o, "name"), buf, sizeof(buf));
			jstr(jfind(o, "build_id"), buf2, sizeof(buf2));
			printf("  %-18s %s, %s  build-id %s\n", buf,
			       jtrue(jfind(o, "loaded")) ? "loaded" :
							   "not loaded",
			       jtrue(jfind(o, "patched")) ? "patched" :
							    "not patched",
			       buf2);
			for (f = NULL; funcs && jnext(funcs, &f);) {
				jstr(jfind(f, "name"), buf, sizeof(buf));
				printf("    %s%s\n", buf,
				       jtrue(jfind(f, "nop")) ? " (nop)" : "");
			}
		}
	}
	if (!npatches)
		printf("no patches\n");
}

int list_print(pid_t pid, bool json)
{
	struct agent a;
	char err[512];
	char *snap;
	int rc;

	/* reads only: another tracer does not stand in the way */
	rc = proc_access(pid, err, sizeof(err));
	if (rc) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	rc = agent_find(pid, &a, err, sizeof(err));
	if (rc) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	if (!a.loaded) {
		if (json)
			printf("{\"pid\":%d,\"agent\":{\"loaded\":false,"
			       "\"version\":null},\"transition\":null,"
			       "\"patches\":[]}\n", pid);
		else
			printf("process %d: no relive agent loaded, no "
			       "patches\n", pid);
		return EXIT_DONE;
	}
	snap = agent_read_snapshot(&a);
	/* agent_read_ctl() leaves the pending threads out */
	if (!snap || proc_read(pid, a.ctl + offsetof(struct relive_ctl, pending),
			       a.c.pending, sizeof(a.c.pending))) {
		free(snap);
		die_msg("cannot read the listing of process %d", pid);
		return EXIT_REFUSED;
	}
	a.c.pending[sizeof(a.c.pending) - 1] = '\0';
	if (json) {
		printf("{\"pid\":%d,\"agent\":{\"loaded\":true,\"version\":\"%s\"},"
		       "\"transition\":", pid, a.c.version);
		if (a.c.trans_active)
			printf("{\"patch\":\"%s\",\"target\":\"%s\",\"pending\":%s}",
			       a.c.trans_patch,
			       a.c.trans_target ? "patched" : "unpatched",
			       a.c.pending);
		else
			printf("null");
		printf(",\"patches\":%s}\n", snap);
	}
	else
		print_plain(pid, &a, snap);
	free(snap);
	return EXIT_DONE;
}
