/*
 * err_missing_func: names a function that the basic target does not have;
 * relive must refuse it (exit 1) and change nothing.  Built a second time
 * as err_missing_lib_func, for libcalc.so (ERR_OBJECT), which `relive
 * patch --all` can match to processes.
 */
#include <relive/livepatch.h>

#ifndef ERR_OBJECT
#define ERR_OBJECT NULL
#endif

static int new_no_such_function(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "no_such_function", .new_func = new_no_such_function },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = ERR_OBJECT, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
