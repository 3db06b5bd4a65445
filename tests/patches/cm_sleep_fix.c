/* cm_sleep_fix: cm_sleep_value() of the cm_sleepers target returns x + 100
 * instead of x + 1. */
#include <relive/livepatch.h>

static int new_cm_sleep_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "cm_sleep_value", .new_func = new_cm_sleep_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
