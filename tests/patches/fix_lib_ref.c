/*
 * fix_lib_ref: calc_value() of libcalc returns x + 300 * calc_two (x + 600),
 * reading libcalc's own calc_two through a KLP_SYMBOL reference into the
 * object it patches: relive resolves it with calc_value, in the file the
 * process runs (tests/scenarios/test_resolution.py).
 */
#include <relive/livepatch.h>

extern volatile int calc_two KLP_SYMBOL("libcalc.so", calc_two, 0);

static int new_calc_value(int x)
{
	return x + 300 * calc_two;
}

static struct klp_func funcs[] = {
	{ .old_name = "calc_value", .new_func = new_calc_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libcalc.so", .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
