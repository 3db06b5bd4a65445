/*
 * err_missing_ref_other: fix_main_calcref with a KLP_SYMBOL reference
 * into libcalc.so (loaded, no function of it replaced) that names no
 * symbol there: refused by relive before it touches the process
 * (tests/scenarios/test_resolution.py).
 */
#include <relive/livepatch.h>

extern volatile int calc_nowhere KLP_SYMBOL("libcalc.so", calc_nowhere, 0);

static int new_basic_value(int x)
{
	return x + 1000 * calc_nowhere;
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
