/*
 * obj_second: a second patch on libobjplug.so (test_objects.py), stacked
 * over obj_fix:
 *     plug_value(x) x + 500000
 *     plug_other(x) counter + x + 900     (original x + 2)
 * with the logging callbacks of cm_cblog.h.
 */
#define CM_PATCH_NAME "obj_second"
#include "cm_cblog.h"

extern volatile int counter KLP_SYMBOL("libobjplug.so", counter, 0);

static int new_plug_value(int x)
{
	return x + 500000;
}

static int new_plug_other(int x)
{
	return counter + x + 900;
}

static struct klp_func funcs[] = {
	{ .old_name = "plug_value", .new_func = new_plug_value },
	{ .old_name = "plug_other", .new_func = new_plug_other },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libobjplug.so", .funcs = funcs, .callbacks = CM_CALLBACKS },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
