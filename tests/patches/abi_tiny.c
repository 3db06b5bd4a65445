/*
 * abi_tiny: tiny_value() of the abi target is four bytes long, shorter
 * than a jump; relive must refuse this patch and change nothing.
 */
#include <relive/livepatch.h>

static int new_tiny_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "tiny_value", .new_func = new_tiny_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
