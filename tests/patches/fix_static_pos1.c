/*
 * fix_static_pos1 / fix_static_pos2: the basic target has two static
 * functions named scale (basic.c: x * 10, basic_aux.c: x * 20).  old_sympos
 * picks one (SCALE_SYMPOS, 1 or 2, set by the build); the new version
 * returns x + 9000.
 */
#include <relive/livepatch.h>

#ifndef SCALE_SYMPOS
#define SCALE_SYMPOS 1
#endif

static int new_scale(int x)
{
	return x + 9000;
}

static struct klp_func funcs[] = {
	{ .old_name = "scale", .new_func = new_scale, .old_sympos = SCALE_SYMPOS },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
