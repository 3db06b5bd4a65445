/*
 * obj_dup0..obj_dup3: obj_host has two static dup_var (obj_host.c: 111,
 * obj_host_aux.c: 222); DUP_SYMPOS picks one (0: ambiguous, refused; 3: out
 * of range, refused).  dup_report(x) returns dup_var * 1000 + x
 * (original x).
 */
#include <relive/livepatch.h>

#define KLP_SYMBOL_POS(pos) KLP_SYMBOL("main", dup_var, pos)
#define KLP_SYMBOL_AT(pos) KLP_SYMBOL_POS(pos)

extern volatile int dup_var KLP_SYMBOL_AT(DUP_SYMPOS);

static int new_dup_report(int x)
{
	return dup_var * 1000 + x;
}

static struct klp_func funcs[] = {
	{ .old_name = "dup_report", .new_func = new_dup_report },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
