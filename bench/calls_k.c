/* bench/calls_k.c - patches bench_k of bench/calls.c; bench_k_v2 is
 * exported so the target can also call it directly. */
#include <relive/livepatch.h>

__attribute__((noipa)) long bench_k_v2(long x);
__attribute__((noipa)) long bench_k_v2(long x)
{
	return x + 2;
}

static struct klp_func funcs[] = {
	{ .old_name = "bench_k", .new_func = bench_k_v2 },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
