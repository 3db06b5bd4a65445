/*
 * fix_main: basic_value() of the main executable of every basic_* build
 * returns x + 100 instead of x + 1.  No build_id: fits all four builds.
 * Built a second time as fix_main_pinned (PIN_BASIC_PIE), pinned to the
 * build-id of the basic_pie built next to it (basic_pie_build_id.h is
 * generated from that file): `relive patch --all` can tell its processes
 * by that build-id alone, the main executable having no name in a patch.
 */
#include <relive/livepatch.h>

#ifdef PIN_BASIC_PIE
#include "basic_pie_build_id.h"
#define MAIN_BUILD_ID BASIC_PIE_BUILD_ID
#else
#define MAIN_BUILD_ID NULL
#endif

static int new_basic_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "basic_value", .new_func = new_basic_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs, .build_id = MAIN_BUILD_ID },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
