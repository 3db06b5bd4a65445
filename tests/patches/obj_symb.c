/*
 * obj_symb: patches libobjsymb.so, a library linked with -Bsymbolic
 * (test_objects.py):  symb_value(x) symb_state * 1000 + x  (original x + 3).
 */
#include <relive/livepatch.h>

extern volatile int symb_state KLP_SYMBOL("libobjsymb.so", symb_state, 0);

static int new_symb_value(int x)
{
	return symb_state * 1000 + x;
}

static struct klp_func funcs[] = {
	{ .old_name = "symb_value", .new_func = new_symb_value },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = "libobjsymb.so", .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
