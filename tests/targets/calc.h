/*
 * tests/targets/calc.h - libcalc, the shared library of the basic target.
 * Built as libcalc.so and libcalc_pfe.so (-fpatchable-function-entry=5);
 * each has its file name as DT_SONAME, the object name a patch gives.
 */
#ifndef RELIVE_TEST_CALC_H
#define RELIVE_TEST_CALC_H

/* The library function that tests patch.  Original: x + 2.
 * Patch fix_lib (fix_lib_pfe, fix_lib_pinned): x + 200. */
int calc_value(int x);

/* Checks that libcalc's exported functions with common names (init,
 * request, patch_apply, shadow_get ...) still bind to libcalc's own
 * definitions, both for its own calls (through the PLT) and for
 * dlsym(RTLD_DEFAULT).  Returns NULL when they all do, else the first name
 * that binds elsewhere. */
const char *calc_own_check(void);

#endif
