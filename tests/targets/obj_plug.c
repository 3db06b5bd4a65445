/*
 * tests/targets/obj_plug.c - libobjplug.so, the plugin that obj_host
 * dlopens (tests/scenarios/test_objects.py); also a dependency of
 * libobjdep.so.
 *
 * Its constructor sets the static counter to $OBJ_SEQ (set by obj_host
 * before each dlopen: a value per load) and records plug_value(5) in
 * plug_ctor_seen, so a test sees which version of plug_value the
 * constructor ran.
 *
 *     plug_value(x)   x + 1         patched: counter * 1000 + helper(x)
 *     plug_touch(x)   x             patched: counter += x, returns counter
 *     plug_other(x)   x + 2
 *     plug_helper(x)  helper(x) = x + 7 (static)
 *     plug_counter(x) counter + x
 */
#include "target.h"

#include <stdlib.h>

static volatile int counter;
/* Volatile loads make every function to patch longer than a jump. */
static volatile int zero, one = 1, two = 2;
int plug_ctor_seen;

static PATCHABLE int helper(int x)
{
	return x + 7;
}

PATCHABLE int plug_value(int x)
{
	return x + one;
}

PATCHABLE int plug_touch(int x)
{
	return x + zero;
}

PATCHABLE int plug_other(int x)
{
	return x + two;
}

int plug_helper(int x)
{
	return helper(x);
}

int plug_counter(int x)
{
	return counter + x;
}

__attribute__((constructor)) static void plug_init(void)
{
	const char *s = getenv("OBJ_SEQ");

	counter = s ? atoi(s) : 1;
	plug_ctor_seen = plug_value(5);
}
