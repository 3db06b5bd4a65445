/*
 * fix_main_calcref: basic_value() of the executable returns
 * x + 1000 * calc_two, reading libcalc.so's calc_two through a KLP_SYMBOL
 * reference: a patch of one object that refers into another, which it
 * does not patch.  relive resolves it in the library the process runs,
 * even when its file has been replaced since it was loaded
 * (tests/scenarios/test_resolution.py).
 */
#include <relive/livepatch.h>

extern volatile int calc_two KLP_SYMBOL("libcalc.so", calc_two, 0);

static int new_basic_value(int x)
{
	return x + 1000 * calc_two;
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
