/*
 * tests/unit/failmalloc.h - allocation failure injection for unit tests.
 *
 * failmalloc.c defines malloc, calloc, realloc and free for the whole test
 * process (libelf included): when fail_at is set, the fail_at-th
 * allocation from then on fails; live counts allocations not freed yet.
 */
#ifndef RELIVE_TEST_FAILMALLOC_H
#define RELIVE_TEST_FAILMALLOC_H

extern long fail_at;
extern long nallocs;
extern long live;

/* Under valgrind its allocator replaces ours: no injection then. */
int injection_works(void);

#endif
