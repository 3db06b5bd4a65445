/*
 * err_buildid_lib: pins libcalc.so to a build-id no build has; relive
 * must refuse it before writing anything (exit 1).
 */
#include <relive/livepatch.h>

static int new_calc_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "calc_value", .new_func = new_calc_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libcalc.so",
	  .funcs = funcs,
	  .build_id = "0123456789abcdef0123456789abcdef01234567" },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
