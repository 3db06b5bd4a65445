/*
 * tests/targets/obj_symb.c - libobjsymb.so, linked with -Bsymbolic: its
 * own call to symb_value is bound inside the library at link time.
 *
 *     symb_value(x)   x + 3
 *     symb_call(x)    symb_value(x) * 2
 *     (static symb_state = 42)
 */
#include "target.h"

static volatile int symb_state = 42;
static volatile int three = 3; /* longer than a jump */

PATCHABLE int symb_value(int x)
{
	return x + three;
}

int symb_call(int x)
{
	return symb_value(x) * 2;
}

int symb_get(int x)
{
	return symb_state + x;
}
