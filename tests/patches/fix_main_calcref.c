/*
 * fix_main_calcref: basic_value() of the executable returns
 * x + 1000 * calc_two, reading libcalc.so's calc_two through a KLP_SYMBOL
 * reference: a patch of one object that refers into another, which it
 * does not patch.  relive resolves it in the library the process runs,
 * even when its file has been replaced since it was loaded
 * (tests/scenarios/test_resolution.py).  err_missing_ref_other
 * (CALC_SYMBOL=calc_nowhere): the same reference naming no symbol of
 * libcalc.so, refused by relive before it touches the process.
 */
#include <relive/livepatch.h>

#ifndef CALC_SYMBOL
#define CALC_SYMBOL calc_two
#endif

/* One level more, so that KLP_SYMBOL names the symbol, not the macro. */
#define CALC_REF(sym) extern volatile int sym KLP_SYMBOL("libcalc.so", sym, 0)
CALC_REF(CALC_SYMBOL);

static int new_basic_value(int x)
{
	return x + 1000 * CALC_SYMBOL;
}

static struct klp_func funcs[] = {
	{ .old_name = "basic_value", .new_func = new_basic_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
