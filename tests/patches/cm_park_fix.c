/*
 * cm_park_fix: version 2 of the functions of the cm_park target.
 *     cm_g      -> 2
 *     cm_f      -> 200 + 10 * G1 + G2, parking between its two calls of
 *                  cm_g as the original does
 *     cm_spin   -> 2 at once
 *     cm_value  -> x + 100
 * With the logging callbacks of cm_cblog.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#define CM_PATCH_NAME "cm_park_fix"
#include "cm_cblog.h"

static int new_cm_g(void)
{
	return 2;
}

/* Calls cm_g through the target's entry (cm_park exports its symbols), so
 * the dispatcher picks the version of this thread's world: it must be
 * version 2. */
extern int cm_g(void);
extern int cm_park_fd;
extern volatile int cm_parked_tid;

static int new_cm_f(int park)
{
	int g1 = cm_g(), g2;
	char c;

	if (park) {
		__atomic_store_n(&cm_parked_tid, gettid(), __ATOMIC_SEQ_CST);
		while (read(cm_park_fd, &c, 1) != 1)
			;
	}
	g2 = cm_g();
	return 200 + 10 * g1 + g2;
}

static int new_cm_spin(void)
{
	return 2;
}

static int new_cm_value(int x)
{
	return x + 100;
}

static struct klp_func funcs[] = {
	{ .old_name = "cm_f", .new_func = new_cm_f },
	{ .old_name = "cm_g", .new_func = new_cm_g },
	{ .old_name = "cm_spin", .new_func = new_cm_spin },
	{ .old_name = "cm_value", .new_func = new_cm_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs, .callbacks = CM_CALLBACKS },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
