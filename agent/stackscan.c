/*
 * agent/stackscan.c - can this stack hold a frame of the code a thread
 * leaves?  The conservative question agent/sleepers.c asks about a thread
 * asleep in a system call, without unwinding it.
 *
 * On x86-64 a function is on a thread's stack only as the innermost frame
 * (the PC is in it) or as a caller, whose return address (the instruction
 * after its `call`) the call pushed and the callee keeps until it returns.
 * A function a signal interrupted is in the saved context on the same
 * stack.  So if no word between the stack pointer and the stack's base
 * points into a version the thread leaves, no frame of that version is on
 * the stack, whatever the frames' layout, with or without unwind tables.
 * The converse does not hold: a stale word or a saved pointer that only
 * looks like a return address makes the answer "maybe", and the thread is
 * left to the controller's exact unwind (relive/transition.c).
 *
 * A word is taken as a return address into a range when the byte before it
 * lies in the range (a call may be the last instruction of its function,
 * so its return address is one past the function's end), and as a saved
 * PC when it lies in the range itself; except the entry of a patched
 * function whose entry jump leads to its stub (RELIVE_RANGE_ENTRY): a
 * thread there has run nothing of the function yet, and will be sent by
 * the dispatcher to its own world.  That exception lets a function pointer
 * to a patched function sit on a stack, which is common (callbacks).
 *
 * Pure: it reads only what it is handed (tests/unit/test_stackscan.c).
 */
#include <stdlib.h>

#include "agent.h"

static int range_cmp(const void *a, const void *b)
{
	const struct relive_ctl_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void stackscan_sort(struct relive_ctl_range *r, size_t n, uint64_t *maxlen)
{
	size_t i;

	*maxlen = 0;
	if (!n)
		return;
	qsort(r, n, sizeof(*r), range_cmp);
	for (i = 0; i < n; i++)
		if (r[i].hi - r[i].lo > *maxlen)
			*maxlen = r[i].hi - r[i].lo;
}

void stackscan_bounds(struct stackscan *s)
{
	size_t i;

	s->lo_all = s->create_hi ? s->create_lo : UINTPTR_MAX;
	s->hi_all = s->create_hi;
	for (i = 0; i < s->n; i++) {
		if (s->r[i].lo < s->lo_all)
			s->lo_all = s->r[i].lo;
		if (s->r[i].hi > s->hi_all)
			s->hi_all = s->r[i].hi;
	}
}

/* The range of world s->world that holds addr, or NULL. */
static const struct relive_ctl_range *find(const struct stackscan *s,
					   uintptr_t addr)
{
	size_t lo = 0, hi = s->n, i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i-- > 0;) {
		const struct relive_ctl_range *r = &s->r[i];

		if (r->lo + s->maxlen <= addr)
			break;
		if (r->world == s->world && addr < r->hi)
			return r;
	}
	return NULL;
}

const char *stackscan_word(const struct stackscan *s, uintptr_t w)
{
	const struct relive_ctl_range *r;
	size_t i;

	if (!w)
		return NULL;
	for (i = 0; i < s->nrestorers; i++)
		if (w == s->restorers[i])
			return "a signal frame";
	/* Most words are data, far from any code looked for. */
	if (w < s->lo_all || w > s->hi_all)
		return NULL;
	if (w - 1 >= s->create_lo && w - 1 < s->create_hi)
		return "pthread_create";
	if (s->any_world)
		return NULL;
	r = find(s, w - 1);
	if (r)
		return r->name;
	r = find(s, w);
	if (r && !(w == r->lo && (r->flags & RELIVE_RANGE_ENTRY)))
		return r->name;
	return NULL;
}

const char *stackscan_words(const struct stackscan *s, const uintptr_t *w,
			    size_t n)
{
	const char *hit;
	size_t i;

	for (i = 0; i < n; i++) {
		hit = stackscan_word(s, w[i]);
		if (hit)
			return hit;
	}
	return NULL;
}

const char *stackscan_pc(const struct stackscan *s, uintptr_t pc)
{
	const struct relive_ctl_range *r;

	if (pc >= s->create_lo && pc < s->create_hi)
		return "pthread_create";
	if (s->any_world)
		return NULL;
	r = find(s, pc);
	if (!r)
		r = find(s, pc - 1);
	return r ? r->name : NULL;
}
