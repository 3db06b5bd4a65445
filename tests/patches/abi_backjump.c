/*
 * abi_backjump: backjump_sum() of the abi target, whose loop jumps back
 * into its first five bytes, returns -1.  relive may refuse it or handle
 * it; it must never break the original.
 */
#include <relive/livepatch.h>

static int new_backjump_sum(int n)
{
	(void)n;
	return -1;
}

static struct klp_func funcs[] = {
	{ .old_name = "backjump_sum", .new_func = new_backjump_sum },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
