/* fix_hammer: hammer_value() of the hammer target returns x + 100 instead
 * of x + 1. */
#include <relive/livepatch.h>

static int new_hammer_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "hammer_value", .new_func = new_hammer_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
