/*
 * fix_main_selfref: basic_value() of the executable returns
 * x + 4000 * basic_one + scale(1), reaching the executable's own global
 * basic_one and its first static scale() (basic.c's: x * 10) through
 * KLP_SYMBOL references, as a patch built by relive-build does: call N
 * -> N + 4010.  relive resolves both in the executable's symbol table
 * when it checks the patch, so the agent reads no symbol table in the
 * process (tests/scenarios/test_agent_libs.py).
 */
#include <relive/livepatch.h>

extern volatile int basic_one KLP_SYMBOL("main", basic_one, 0);
extern int first_scale(int) KLP_SYMBOL("main", scale, 1);

static int new_basic_value(int x)
{
	return x + 4000 * basic_one + first_scale(1);
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
