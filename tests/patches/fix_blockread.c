/* fix_blockread: blockread_value() of the blockread target returns x + 100 instead
 * of x + 1. */
#include <relive/livepatch.h>

static int new_blockread_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "blockread_value", .new_func = new_blockread_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
