/*
 * abi_variadic: var_sum(n, ...) of the abi target (arguments alternately
 * long and double) returns 10 times their sum.
 */
#include <relive/livepatch.h>

#include <stdarg.h>

static double new_var_sum(int n, ...)
{
	double sum = 0;
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		sum += i % 2 == 0 ? (double)va_arg(ap, long) :
				    va_arg(ap, double);
	va_end(ap);
	return 10 * sum;
}

static struct klp_func funcs[] = {
	{ .old_name = "var_sum", .new_func = new_var_sum },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
