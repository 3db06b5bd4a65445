/*
 * tests/targets/obj_aux.c - libobjaux.so, a second plugin of obj_host.
 *
 *     aux_value(x)    x + 4
 *     aux_get(x)      aux_state + x  (static aux_state, 7 at load)
 */
#include "target.h"

static volatile int aux_state = 7;
static volatile int four = 4; /* longer than a jump */

PATCHABLE int aux_value(int x)
{
	return x + four;
}

int aux_get(int x)
{
	return aux_state + x;
}
