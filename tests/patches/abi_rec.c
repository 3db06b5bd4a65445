/*
 * abi_rec: rec_sum(n) of the abi target returns 2n + rec_sum(n-1), i.e.
 * n(n+1) instead of n(n+1)/2.  The new version recurses into itself.
 */
#include <relive/livepatch.h>

static long new_rec_sum(long n)
{
	volatile long below;

	if (n <= 0)
		return 0;
	below = new_rec_sum(n - 1);
	return 2 * n + below;
}

static struct klp_func funcs[] = {
	{ .old_name = "rec_sum", .new_func = new_rec_sum },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
