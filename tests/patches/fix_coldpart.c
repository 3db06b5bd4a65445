/* fix_coldpart: coldpart_gate() of the coldpart target returns v + 1000
 * (and 1001 after its wait) instead of v + 1. */
#include <relive/livepatch.h>

#include <unistd.h>

static int new_coldpart_gate(int v)
{
	return (v < 0 ? 1 : v + 1) + 1000;
}

static struct klp_func funcs[] = {
	{ .old_name = "coldpart_gate", .new_func = new_coldpart_gate },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
