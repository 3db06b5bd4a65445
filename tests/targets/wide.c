/*
 * tests/targets/wide.c - a target with many functions to patch at once:
 * 300 of them, wide_000() ... wide_299(), more than the agent's table of
 * patched functions holds before it first grows (agent/patch.c), so a
 * patch of all of them makes it grow twice with functions in it.
 *
 * Each function returns x + 1; the patches fix_wide and fix_wide2 make
 * each return x + 100 and x + 200.  Commands (besides those of target.h):
 *     direct -> what the functions returned, called with 0 by direct
 *               calls (`call rel32` in this object, which relive retargets
 *               once a transition completes): each value with its count,
 *               in the order first seen, "1x300" or "100x298 1x2"
 *     ptr    -> the same, each function called through a pointer (its
 *               entry)
 */
#include "target.h"
#include "wide.h"

#include <stdio.h>
#include <string.h>

volatile long wide_one = 1;

#define DEFINE_WIDE(name) \
	PATCHABLE long name(long x) { return x + wide_one; }
WIDE_ALL(DEFINE_WIDE)

#define POINTER_WIDE(name) name,
static long (*const volatile wide_ptrs[])(long) = { WIDE_ALL(POINTER_WIDE) };

/* The values returned and how often, in the order first seen. */
struct counts {
	long value[WIDE_NFUNCS];
	int n[WIDE_NFUNCS], distinct;
};

static void count(struct counts *c, long v)
{
	int i;

	for (i = 0; i < c->distinct && c->value[i] != v; i++)
		;
	if (i == c->distinct) {
		c->value[c->distinct] = v;
		c->n[c->distinct++] = 0;
	}
	c->n[i]++;
}

static void reply(const struct counts *c)
{
	char buf[1024];
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < c->distinct && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%ldx%d",
					i ? " " : "", c->value[i], c->n[i]);
	target_reply("%s", buf);
}

/* Kept out of line, so its direct calls are a function of their own. */
PATCHABLE static void call_direct(struct counts *c)
{
#define CALL_WIDE(name) count(c, name(0));
	WIDE_ALL(CALL_WIDE)
}

int main(void)
{
	char line[256];

	target_idle_threads(2);
	target_reply("ready");
	while (target_next(line, sizeof(line))) {
		struct counts c;

		c.distinct = 0;
		if (target_common(line))
			continue;
		if (strcmp(line, "direct") == 0) {
			call_direct(&c);
			reply(&c);
		} else if (strcmp(line, "ptr") == 0) {
			for (int i = 0; i < WIDE_NFUNCS; i++)
				count(&c, wide_ptrs[i](0));
			reply(&c);
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
