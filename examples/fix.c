/*
 * examples/fix.c - the live patch for examples/server.c: orders of 10 items
 * or more get the bulk discount (the server gave it only above 10).
 *
 *     cc -shared -fPIC -I include -o fix.so examples/fix.c
 *     relive patch -p $(pidof server) fix.so
 */
#include <relive/livepatch.h>

#define BULK_MIN 10
#define BULK_DISCOUNT 10   /* percent */

static long order_total_cents_fixed(long unit_cents, long qty)
{
	long total = unit_cents * qty;

	if (qty >= BULK_MIN)
		total -= total * BULK_DISCOUNT / 100;
	return total;
}

static struct klp_func funcs[] = {
	{ .old_name = "order_total_cents", .new_func = order_total_cents_fixed },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },   /* the server's executable */
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
