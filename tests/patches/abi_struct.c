/*
 * abi_struct: make_triple() (returned in memory) returns
 * {10x, 20x, 30x} and make_pair() (returned in %rax:%xmm0) {x+100, x*1.5}.
 */
#include <relive/livepatch.h>

struct triple {
	long a, b, c;
};

struct pair {
	long n;
	double d;
};

static struct triple new_make_triple(long x)
{
	struct triple t = { 10 * x, 20 * x, 30 * x };

	return t;
}

static struct pair new_make_pair(long x)
{
	struct pair p = { x + 100, (double)x * 1.5 };

	return p;
}

static struct klp_func funcs[] = {
	{ .old_name = "make_triple", .new_func = new_make_triple },
	{ .old_name = "make_pair", .new_func = new_make_pair },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
