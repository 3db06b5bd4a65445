/*
 * bench/fleet_fix.c - the patch of the many-processes benchmark:
 * fleet_value() in libfleet.so returns x + 100 instead of x + 1.
 */
#include <relive/livepatch.h>

static long fleet_value_v2(long x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "fleet_value", .new_func = fleet_value_v2 },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libfleet.so", .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
