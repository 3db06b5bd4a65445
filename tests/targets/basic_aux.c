/*
 * tests/targets/basic_aux.c - the second static scale() of the basic
 * target.  Both are local symbols named "scale" in the executable's symbol
 * table, so a patch that names "scale" without old_sympos is ambiguous.
 */
#include "target.h"

extern volatile int basic_one;

int aux_scale(int x);

/* Original behaviour: x * 20. */
static PATCHABLE int scale(int x)
{
	return x * 20 * basic_one;
}

int aux_scale(int x)
{
	return scale(x);
}
