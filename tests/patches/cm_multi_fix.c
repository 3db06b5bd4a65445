/*
 * The patches of the cm_multi target for the stacked/replace and callback
 * rows, one source built with different definitions (tests/patches/
 * meson.build):
 *
 *     CM_PATCH_NAME   the patch's name (for the callback log)
 *     FA, FB, FC      when defined, cm_fa/cm_fb/cm_fc return x + that
 *     LIB             when defined, calc_value of libcalc.so returns x + LIB
 *     REPLACE         an atomic-replace patch
 *     CM_FAIL_PRE_PATCH_OBJ  that object's pre_patch fails (cm_cblog.h)
 *
 * Every object has the logging callbacks of cm_cblog.h.
 */
#include "cm_cblog.h"

#ifdef FA
static int new_cm_fa(int x) { return x + FA; }
#endif
#ifdef FB
static int new_cm_fb(int x) { return x + FB; }
#endif
#ifdef FC
static int new_cm_fc(int x) { return x + FC; }
#endif
#ifdef LIB
static int new_calc_value(int x) { return x + LIB; }
#endif

static struct klp_func main_funcs[] = {
#ifdef FA
	{ .old_name = "cm_fa", .new_func = new_cm_fa },
#endif
#ifdef FB
	{ .old_name = "cm_fb", .new_func = new_cm_fb },
#endif
#ifdef FC
	{ .old_name = "cm_fc", .new_func = new_cm_fc },
#endif
	{ 0 }
};

#ifdef LIB
static struct klp_func lib_funcs[] = {
	{ .old_name = "calc_value", .new_func = new_calc_value },
	{ 0 }
};
#endif

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = main_funcs, .callbacks = CM_CALLBACKS },
#ifdef LIB
	{ .name = "libcalc.so", .funcs = lib_funcs, .callbacks = CM_CALLBACKS },
#endif
	{ 0 }
};

#ifdef REPLACE
static struct klp_patch patch = { .objs = objs, .replace = true };
#else
static struct klp_patch patch = { .objs = objs };
#endif
RELIVE_PATCH(patch);
