/*
 * tests/targets/abi_cet.c - built with -fcf-protection=full, so its
 * functions begin with endbr64.  A redirection must keep endbr64 as the
 * first instruction (indirect calls land on it) and jump from entry+4.
 */
#include "abi.h"
#include "target.h"

volatile int cet_one = 1;

/* Original behaviour: x + 1.  Patch abi_cet: x + 100. */
PATCHABLE int cet_value(int x)
{
	return x + cet_one;
}
