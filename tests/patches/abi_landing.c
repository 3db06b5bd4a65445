/*
 * abi_landing: far_landing() of the abi target returns x + 100 instead of
 * x + 1, and near_landing() x + 200 instead of x + 2.  The first entry jump
 * is a one-byte write, the second one is not.
 */
#include <relive/livepatch.h>

static int new_far_landing(int x)
{
	return x + 100;
}

static int new_near_landing(int x)
{
	return x + 200;
}

static struct klp_func funcs[] = {
	{ .old_name = "far_landing", .new_func = new_far_landing },
	{ .old_name = "near_landing", .new_func = new_near_landing },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
