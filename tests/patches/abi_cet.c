/*
 * abi_cet: cet_value() of the abi target, which starts with endbr64,
 * returns x + 100 instead of x + 1.
 */
#include <relive/livepatch.h>

static int new_cet_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "cet_value", .new_func = new_cet_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
