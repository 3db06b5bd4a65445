/*
 * fix_main_orig: basic_value() of the executable returns its original
 * code's answer plus 5000 (call N -> N + 5001), calling the original
 * through a KLP_ORIGINAL reference to the function it replaces.  relive
 * resolves the reference with the function, and the original is the copy
 * the agent makes of the function's first instructions anyway, so nothing
 * is looked up or decoded in the process
 * (tests/scenarios/test_agent_libs.py).
 */
#include <relive/livepatch.h>

extern int orig_basic_value(int) KLP_ORIGINAL("main", basic_value, 0);

static int new_basic_value(int x)
{
	return orig_basic_value(x) + 5000;
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
