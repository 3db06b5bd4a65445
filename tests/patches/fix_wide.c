/* fix_wide: each of the wide target's 300 functions wide_NNN() returns
 * x + 100 instead of x + 1; built as fix_wide2 with -DWIDE_NEW=200, x + 200. */
#include <relive/livepatch.h>

#include "wide.h"

#ifndef WIDE_NEW
#define WIDE_NEW 100
#endif

#define NEW_WIDE(name) \
	static long new_##name(long x) { return x + WIDE_NEW; }
#define FUNC_WIDE(name) { .old_name = #name, .new_func = new_##name },

WIDE_ALL(NEW_WIDE)

static struct klp_func funcs[] = {
	WIDE_ALL(FUNC_WIDE)
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
