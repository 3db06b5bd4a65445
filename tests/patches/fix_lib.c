/*
 * fix_lib: calc_value() of libcalc returns x + 200 instead of x + 2.  Built
 * twice: fix_lib.so for "libcalc.so", fix_lib_pfe.so for "libcalc_pfe.so"
 * (CALC_SONAME set by the build).
 */
#include <relive/livepatch.h>

#ifndef CALC_SONAME
#define CALC_SONAME "libcalc.so"
#endif

static int new_calc_value(int x)
{
	return x + 200;
}

static struct klp_func funcs[] = {
	{ .old_name = "calc_value", .new_func = new_calc_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = CALC_SONAME, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
