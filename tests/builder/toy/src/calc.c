/* Arithmetic with state: a static counter, a static limit, a static
 * helper. */
#include "toy.h"

static int count;
static int limit = 10;

static __attribute__((noinline)) int scale(int x)
{
	return x * 2;
}

int compute(int x)
{
	count++;
	if (x > 1000)
		return -1;
	return scale(x) + 1;
}

int served(void)
{
	return count;
}

int limit_value(void)
{
	return limit;
}

void set_limit(int v)
{
	limit = v;
}
