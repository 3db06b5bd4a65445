/*
 * fix_lib_pinned: fix_lib pinned to the build-id of the libcalc.so built
 * next to it (calc_build_id.h is generated from that file), so the build-id
 * check must accept it.
 */
#include <relive/livepatch.h>

#include "calc_build_id.h"

static int new_calc_value(int x)
{
	return x + 200;
}

static struct klp_func funcs[] = {
	{ .old_name = "calc_value", .new_func = new_calc_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libcalc.so", .funcs = funcs, .build_id = CALC_BUILD_ID },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
