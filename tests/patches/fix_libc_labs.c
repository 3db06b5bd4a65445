/*
 * fix_libc_labs: replaces labs() in libc.so.6 with a version that computes
 * the same.  A patch of a libc function: the agent's own thread, whose
 * stack starts in libc, cannot switch itself for it and is checked by
 * relive like any other (test_consistency.py).  No target calls labs, and
 * neither does the agent.
 */
#include <relive/livepatch.h>

static long new_labs(long x)
{
	return x < 0 ? -x : x;
}

static struct klp_func funcs[] = {
	{ .old_name = "labs", .new_func = new_labs },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libc.so.6", .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
