/*
 * fix_main: basic_value() of the main executable of every basic_* build
 * returns x + 100 instead of x + 1.  No build_id: fits all four builds.
 */
#include <relive/livepatch.h>

static int new_basic_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "basic_value", .new_func = new_basic_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
