/*
 * err_ambiguous: names 'scale' with old_sympos 0, but the basic target
 * has two static functions named scale; relive must refuse it (exit 1),
 * say to set old_sympos, and change nothing.
 */
#include <relive/livepatch.h>

static int new_scale(int x)
{
	return x + 9000;
}

static struct klp_func funcs[] = {
	{ .old_name = "scale", .new_func = new_scale, .old_sympos = 0 },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
