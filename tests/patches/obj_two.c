/*
 * obj_two: one patch for two libraries of obj_host (test_objects.py):
 *   libobjplug.so: plug_other(x) helper(x) + 20000   (original x + 2)
 *   libobjaux.so:  aux_value(x)  aux_state * 1000 + x (original x + 4)
 * with the logging callbacks of cm_cblog.h.
 */
#define CM_PATCH_NAME "obj_two"
#include "cm_cblog.h"

extern int helper(int) KLP_SYMBOL("libobjplug.so", helper, 0);
extern volatile int aux_state KLP_SYMBOL("libobjaux.so", aux_state, 0);

static int new_plug_other(int x)
{
	return helper(x) + 20000;
}

static int new_aux_value(int x)
{
	return aux_state * 1000 + x;
}

static struct klp_func plug_funcs[] = {
	{ .old_name = "plug_other", .new_func = new_plug_other },
	{ 0 }
};

static struct klp_func aux_funcs[] = {
	{ .old_name = "aux_value", .new_func = new_aux_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libobjplug.so", .funcs = plug_funcs,
	  .callbacks = CM_CALLBACKS },
	{ .name = "libobjaux.so", .funcs = aux_funcs,
	  .callbacks = CM_CALLBACKS },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
