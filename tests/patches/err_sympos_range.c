/*
 * err_sympos_range: names the third 'scale' of the basic target, which
 * has two; relive must refuse it (exit 1) and change nothing.
 */
#include <relive/livepatch.h>

static int new_scale(int x)
{
	return x + 9000;
}

static struct klp_func funcs[] = {
	{ .old_name = "scale", .new_func = new_scale, .old_sympos = 3 },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
