/*
 * tests/unit/failmalloc.c - allocation failure injection (failmalloc.h),
 * shared by the unit tests of the ELF readers.
 */
#include <stddef.h>

#include "failmalloc.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

long fail_at;
long nallocs;
long live;

static int should_fail(void)
{
	return fail_at && ++nallocs == fail_at;
}

void *malloc(size_t n)
{
	void *p = should_fail() ? NULL : __libc_malloc(n);

	live += p != NULL;
	return p;
}

void *calloc(size_t n, size_t m)
{
	void *p = should_fail() ? NULL : __libc_calloc(n, m);

	live += p != NULL;
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q = should_fail() ? NULL : __libc_realloc(p, n);

	live += !p && q;
	return q;
}

void free(void *p)
{
	live -= p != NULL;
	__libc_free(p);
}

int injection_works(void)
{
	/* Through a pointer, so the compiler cannot fold the malloc/free pair
	 * of its builtin knowledge away. */
	void *(*volatile alloc)(size_t) = malloc;
	void *p;

	nallocs = 0;
	fail_at = 1;
	p = alloc(1);
	fail_at = 0;
	free(p);
	return p == NULL;
}
