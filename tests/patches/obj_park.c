/*
 * obj_park: held in its patching transition by a thread of obj_host
 * sleeping in main_park (test_objects.py), while libobjplug.so arrives:
 *   main:          main_park(x)  orig_main_park(x) + 99, so that it still
 *                                 sleeps until woken  (original x + 1)
 *   libobjplug.so: plug_value(x) x + 300   (original x + 1)
 * with the logging callbacks of cm_cblog.h.
 */
#define CM_PATCH_NAME "obj_park"
#include "cm_cblog.h"

extern int orig_main_park(int) KLP_ORIGINAL("main", main_park, 0);

static int new_main_park(int x)
{
	return orig_main_park(x) + 99;
}

static int new_plug_value(int x)
{
	return x + 300;
}

static struct klp_func main_funcs[] = {
	{ .old_name = "main_park", .new_func = new_main_park },
	{ 0 }
};

static struct klp_func plug_funcs[] = {
	{ .old_name = "plug_value", .new_func = new_plug_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = main_funcs, .callbacks = CM_CALLBACKS },
	{ .name = "libobjplug.so", .funcs = plug_funcs,
	  .callbacks = CM_CALLBACKS },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
