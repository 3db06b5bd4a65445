/*
 * bench/patch_many.c - a patch of the first BENCH_NFUNCS (1, 100, 1000 or
 * 10000) functions bf_NNNN() of bench/many.c, built once per size.
 */
#include <relive/livepatch.h>

#include "gen.h"

#define NEW_BF(name) \
	__attribute__((noipa)) static long name##_v2(long x) { return x + 2; }
#define FUNC_BF(name) { .old_name = #name, .new_func = name##_v2 },

#if BENCH_NFUNCS == 1
#define BENCH_ALL(M) M(bf_0000)
#elif BENCH_NFUNCS == 100
#define BENCH_ALL(M) BENCH_REP100(M, bf_00)
#elif BENCH_NFUNCS == 1000
#define BENCH_ALL(M) BENCH_REP1000(M, bf_0)
#elif BENCH_NFUNCS == 10000
#define BENCH_ALL(M) BENCH_REP10000(M, bf_)
#else
#error BENCH_NFUNCS must be 1, 100, 1000 or 10000
#endif

BENCH_ALL(NEW_BF)

static struct klp_func funcs[] = {
	BENCH_ALL(FUNC_BF)
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
