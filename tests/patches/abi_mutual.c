/*
 * abi_mutual: the mutually recursive ping() and pong() of the abi target
 * add 10 and 20 per level instead of 1 and 2 (ping(4) = 60 instead of 6).
 */
#include <relive/livepatch.h>

static long new_pong(long n);

static long new_ping(long n)
{
	volatile long r;

	if (n <= 0)
		return 0;
	r = new_pong(n - 1);
	return 10 + r;
}

static long new_pong(long n)
{
	volatile long r;

	if (n <= 0)
		return 0;
	r = new_ping(n - 1);
	return 20 + r;
}

static struct klp_func funcs[] = {
	{ .old_name = "ping", .new_func = new_ping },
	{ .old_name = "pong", .new_func = new_pong },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
