/*
 * cm_park_one: one function of the cm_park target at a time, so that two
 * patches stack over a caller and its callee (tests/scenarios/
 * test_direct.py): built with -DONE_F (cm_f -> 300 + 10 * G1 + G2, calling
 * cm_g through the target's entry) or -DONE_G (cm_g -> 3).
 */
extern int cm_g(void);

#include <relive/livepatch.h>

#ifdef ONE_F
static int new_cm_f(int park)
{
	(void)park; /* never parks: the tests using it do not */
	return 300 + 10 * cm_g() + cm_g();
}
#define OLD "cm_f"
#define NEW new_cm_f
#else
static int new_cm_g(void)
{
	return 3;
}
#define OLD "cm_g"
#define NEW new_cm_g
#endif

static struct klp_func funcs[] = {
	{ .old_name = OLD, .new_func = NEW },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
