/*
 * stack_p3: one of three patches stacked on basic_value() (stack_p1,
 * stack_p2, stack_p3).  This one returns x + 3000; the newest enabled
 * patch wins.
 */
#include <relive/livepatch.h>

static int new_basic_value(int x)
{
	return x + 3000;
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
