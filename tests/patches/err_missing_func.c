/*
 * err_missing_func: names a function that the basic target does not have;
 * relive must refuse it (exit 1) and change nothing.
 */
#include <relive/livepatch.h>

static int new_no_such_function(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "no_such_function", .new_func = new_no_such_function },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
