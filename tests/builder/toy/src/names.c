/* Strings: a greeting, and where() reports its own source line. */
#include <stdio.h>

#include "toy.h"

int verbosity = 1;

const char *greeting(void)
{
	static int calls;
	static char buf[64];

	calls++;
	snprintf(buf, sizeof(buf), "hello #%d", calls);
	return buf;
}

const char *where(void)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s:%d", __func__, __LINE__);
	return buf;
}
