/*
 * cm_chain_v2 (TAG 2) and cm_chain_v3r (TAG 3, REPLACE): version TAG of
 * cm_outer and cm_inner of the cm_chain target.  cm_outer returns
 * 10 * TAG + cm_inner(), called through the target's entry so the
 * dispatcher picks the version of the calling thread's world.
 */
#include <relive/livepatch.h>

#ifndef TAG
#error TAG must be defined
#endif

extern volatile int cm_window;
extern int cm_inner(void);

static int new_cm_inner(void)
{
	return TAG;
}

static int new_cm_outer(void)
{
	for (volatile int i = 0; i < cm_window; i++)
		;
	return 10 * TAG + cm_inner();
}

static struct klp_func funcs[] = {
	{ .old_name = "cm_outer", .new_func = new_cm_outer },
	{ .old_name = "cm_inner", .new_func = new_cm_inner },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

#ifdef REPLACE
static struct klp_patch patch = { .objs = objs, .replace = true };
#else
static struct klp_patch patch = { .objs = objs };
#endif
RELIVE_PATCH(patch);
