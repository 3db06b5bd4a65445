/*
 * err_missing_newfunc: the new version of basic_value is declared but not
 * defined in the patch file (a weak undefined symbol, NULL at run time);
 * relive must refuse it (exit 1) and leave nothing loaded.
 */
#include <relive/livepatch.h>

extern int new_basic_value(int x) __attribute__((weak));

static struct klp_func funcs[] = {
	{ .old_name = "basic_value", .new_func = new_basic_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
