/*
 * obj_tls: reaches the static __thread variable tv of obj_host
 * (test_objects.py):  tls_report(x) returns tv * 1000 + x, then adds 1 to
 * the calling thread's tv  (original: x).
 */
#include <relive/livepatch.h>

extern __thread int tv KLP_SYMBOL("main", tv, 0);

static int new_tls_report(int x)
{
	int r = tv * 1000 + x;

	tv = tv + 1;
	return r;
}

static struct klp_func funcs[] = {
	{ .old_name = "tls_report", .new_func = new_tls_report },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
