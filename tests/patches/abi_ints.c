/*
 * abi_ints: many_ints() of the abi target returns the weighted sum
 * 1*a + 2*b + ... + 10*j instead of the plain sum (four arguments are on
 * the stack).
 */
#include <relive/livepatch.h>

static long new_many_ints(int a, int b, int c, int d, int e, int f, int g,
			  int h, int i, int j)
{
	return 1L * a + 2L * b + 3L * c + 4L * d + 5L * e + 6L * f + 7L * g +
	       8L * h + 9L * i + 10L * j;
}

static struct klp_func funcs[] = {
	{ .old_name = "many_ints", .new_func = new_many_ints },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
