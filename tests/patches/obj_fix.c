/*
 * obj_fix (and obj_fail): the main patch of the "objects that come and go"
 * scenarios (tests/scenarios/test_objects.py, target obj_host with its
 * plugin libobjplug.so).  It reaches non-exported symbols of both objects
 * with KLP_SYMBOL and the original compute with KLP_ORIGINAL:
 *
 *   main:
 *     compute(x)    orig_compute(x) * 1000 + x   (original x + 1)
 *     main_touch(x) main_static += x; main_static * 1000 + main_helper(x)
 *     main_probe(x) counter of libobjplug.so when that reference is set,
 *                   -1 when it is cleared (the library is not loaded)
 *   libobjplug.so:
 *     plug_value(x) counter * 1000 + helper(x)   (original x + 1)
 *     plug_touch(x) counter += x; returns counter
 *
 * Both objects have the logging callbacks of cm_cblog.h (RELIVE_TEST_CBLOG);
 * CM_PATCH_NAME is the patch's name, CM_FAIL_PRE_PATCH_OBJ makes that
 * object's pre_patch fail (obj_fail: "libobjplug.so").  Every callback of
 * libobjplug.so first checks that the patch's references into it are set
 * and the library still mapped (it reads counter and calls helper through
 * them; the kernel resolves an object's relocations before its pre_patch
 * and clears them after its post_unpatch): when they are not, it logs
 * "noref-<callback> ..." in addition.
 */
#include "cm_cblog.h"

extern volatile int counter KLP_SYMBOL("libobjplug.so", counter, 0);
extern int helper(int) KLP_SYMBOL("libobjplug.so", helper, 0);
extern volatile int main_static KLP_SYMBOL("main", main_static, 0);
extern int main_helper(int) KLP_SYMBOL("main", main_helper, 0);
extern int orig_compute(int) KLP_ORIGINAL("main", compute, 0);

static int new_compute(int x)
{
	return orig_compute(x) * 1000 + x;
}

static int new_main_touch(int x)
{
	main_static = main_static + x;
	return main_static * 1000 + main_helper(x);
}

static int new_main_probe(int x)
{
	(void)x;
	return &counter ? counter : -1;
}

static int new_plug_value(int x)
{
	return counter * 1000 + helper(x);
}

static int new_plug_touch(int x)
{
	counter = counter + x;
	return counter;
}

static void check_refs(const char *what, struct klp_object *obj)
{
	if (!obj->name)
		return;
	if (!&counter || !helper || helper(0) != 7 + 0 * counter)
		cm_cblog(what, obj);
}

static int fix_pre_patch(struct klp_object *obj)
{
	check_refs("noref-pre_patch", obj);
	return cm_pre_patch(obj);
}

static void fix_post_patch(struct klp_object *obj)
{
	check_refs("noref-post_patch", obj);
	cm_post_patch(obj);
}

static void fix_pre_unpatch(struct klp_object *obj)
{
	check_refs("noref-pre_unpatch", obj);
	cm_pre_unpatch(obj);
}

static void fix_post_unpatch(struct klp_object *obj)
{
	check_refs("noref-post_unpatch", obj);
	cm_post_unpatch(obj);
}

#define FIX_CALLBACKS                                                          \
	{                                                                      \
		.pre_patch = fix_pre_patch, .post_patch = fix_post_patch,      \
		.pre_unpatch = fix_pre_unpatch,                                \
		.post_unpatch = fix_post_unpatch                               \
	}

static struct klp_func main_funcs[] = {
	{ .old_name = "compute", .new_func = new_compute },
	{ .old_name = "main_touch", .new_func = new_main_touch },
	{ .old_name = "main_probe", .new_func = new_main_probe },
	{ 0 }
};

static struct klp_func plug_funcs[] = {
	{ .old_name = "plug_value", .new_func = new_plug_value },
	{ .old_name = "plug_touch", .new_func = new_plug_touch },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = main_funcs, .callbacks = FIX_CALLBACKS },
	{ .name = "libobjplug.so", .funcs = plug_funcs,
	  .callbacks = FIX_CALLBACKS },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
