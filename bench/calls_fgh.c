/* bench/calls_fgh.c - patches bench_f, bench_g and bench_h of
 * bench/calls.c in one transition; bench_f_v2 is exported so the target can
 * also call it directly. */
#include <relive/livepatch.h>

__attribute__((noipa)) long bench_f_v2(long x);
__attribute__((noipa)) long bench_f_v2(long x)
{
	return x + 2;
}

static void new_bench_g(void (*cb)(void))
{
	cb();
	__asm__ volatile("" ::: "memory");
}

static void new_bench_h(void (*cb)(void))
{
	cb();
	__asm__ volatile("" ::: "memory");
}

static struct klp_func funcs[] = {
	{ .old_name = "bench_f", .new_func = bench_f_v2 },
	{ .old_name = "bench_g", .new_func = new_bench_g },
	{ .old_name = "bench_h", .new_func = new_bench_h },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
