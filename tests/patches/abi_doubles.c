/*
 * abi_doubles: many_doubles() of the abi target returns
 * 1*a + 2*b + ... + 10*j - k instead of a + b + ... + j + k (two doubles
 * are on the stack).
 */
#include <relive/livepatch.h>

static double new_many_doubles(double a, double b, double c, double d,
			       double e, double f, double g, double h,
			       double i, double j, int k)
{
	return 1 * a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h +
	       9 * i + 10 * j - k;
}

static struct klp_func funcs[] = {
	{ .old_name = "many_doubles", .new_func = new_many_doubles },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
