/*
 * fix_main_objs8, fix_main_objs9: fix_main's change (basic_value: x + 100)
 * in a patch of NOBJS objects, the executable and NOBJS - 1 libraries no
 * target loads (each with one function).  relive's resolution table
 * (common/ctl.h) holds 8 objects: the first fits, the second does not,
 * and its agent reads the files itself.  fix_lib_objs9 (PATCH_LIB): the
 * same with fix_lib's change (calc_value of libcalc.so: x + 200) in place
 * of the executable's.
 */
#include <relive/livepatch.h>

#ifdef PATCH_LIB
#define OBJECT "libcalc.so"
#define OLD "calc_value"
#define DELTA 200
#else
#define OBJECT NULL
#define OLD "basic_value"
#define DELTA 100
#endif

static int new_value(int x)
{
	return x + DELTA;
}

static long new_absent(long x)
{
	return x;
}

static struct klp_func funcs[] = {
	{ .old_name = OLD, .new_func = new_value },
	{ 0 }
};

static struct klp_func absent_funcs[] = {
	{ .old_name = "absent_value", .new_func = new_absent },
	{ 0 }
};

#define ABSENT(n) { .name = "librelive-absent" #n ".so", .funcs = absent_funcs }

static struct klp_object objs[] = {
	{ .name = OBJECT, .funcs = funcs },
	ABSENT(1), ABSENT(2), ABSENT(3), ABSENT(4), ABSENT(5), ABSENT(6),
	ABSENT(7),
#if NOBJS > 8
	ABSENT(8),
#endif
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
