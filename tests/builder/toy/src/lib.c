/* The toy's shared library (libtoy.so): an input check with a bug, and a
 * static counter of the checks made. */
#include "toy.h"

static int hits;

int lib_check(int v)
{
	hits++;
	if (v > 100)
		return 1;
	return v % 7 == 0;
}

int lib_hits(void)
{
	return hits;
}
