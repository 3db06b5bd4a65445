/* The toy's functions, one file each: calc.c, names.c, fast.S, and lib.c
 * (libtoy.so). */
#ifndef TOY_H
#define TOY_H
int compute(int x);
int served(void);
int limit_value(void);
void set_limit(int v);
const char *greeting(void);
const char *where(void);
int fast_one(void);
int lib_check(int v);
int lib_hits(void);
extern int verbosity;
#endif
