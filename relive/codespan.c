/*
 * relive/codespan.c - the plan of held code writes sorted, grouped into
 * spans of code and checked; a held thread's PC looked up among them.
 * See codespan.h; relive/codewrite.c does the reading and writing.
 */
#include <stdlib.h>
#include <string.h>

#include "codespan.h"

static int by_addr(const void *a, const void *b, void *plan)
{
	const struct relive_ctl_write *w = plan;
	uint64_t x = w[*(const size_t *)a].addr;
	uint64_t y = w[*(const size_t *)b].addr;

	return x < y ? -1 : x > y;
}

void codespan_sort(const struct relive_ctl_write *plan, size_t n,
		   size_t *order)
{
	size_t i;

	for (i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), by_addr, (void *)plan);
}

static uint64_t page_of(uint64_t addr)
{
	return addr & ~(uint64_t)(CODESPAN_PAGE - 1);
}

size_t codespan_group(const struct relive_ctl_write *plan,
		      const size_t *order, size_t n, struct codespan *spans)
{
	size_t i, ns = 0;

	for (i = 0; i < n; i++) {
		const struct relive_ctl_write *w = &plan[order[i]];
		struct codespan *s = ns ? &spans[ns - 1] : NULL;
		uint64_t end = w->addr + w->len;

		if (s && page_of(w->addr) == page_of(s->start + s->len - 1)) {
			if (end - s->start > s->len)
				s->len = end - s->start;
			s->n++;
			continue;
		}
		s = &spans[ns++];
		memset(s, 0, sizeof(*s));
		s->start = w->addr;
		s->len = w->len;
		s->first = i;
		s->n = 1;
	}
	return ns;
}

int codespan_splice(struct relive_ctl_write *plan, const size_t *order,
		    struct codespan *s, const uint8_t *now, uint8_t *after,
		    size_t *todo, size_t *bad)
{
	size_t k;

	memcpy(after, now, s->len);
	for (k = s->first; k < s->first + s->n; k++) {
		struct relive_ctl_write *w = &plan[order[k]];
		size_t off = w->addr - s->start;

		if (!w->len)
			continue;
		if (!memcmp(now + off, w->bytes, w->len)) {
			w->len = 0; /* done by an interrupted run */
			continue;
		}
		if (memcmp(now + off, w->expect, w->len)) {
			*bad = order[k];
			return -1;
		}
		memcpy(after + off, w->bytes, w->len);
		s->todo = true;
		(*todo)++;
	}
	return 0;
}

/* One site: see codespan_fix_pc. */
static int fix_one(const struct relive_ctl_write *w, uint64_t pc,
		   uint64_t *new_pc)
{
	unsigned i;

	if (!w->len || !w->redirect || pc <= w->addr)
		return 0;
	for (i = 1; i < w->n_insns && i < sizeof(w->old_off); i++)
		if (pc == w->addr + w->old_off[i]) {
			*new_pc = w->copy + w->new_off[i];
			return 1;
		}
	return pc < w->addr + w->len ? -1 : 0;
}

int codespan_fix_pc(const struct relive_ctl_write *plan, const size_t *order,
		    size_t n, uint64_t pc, uint64_t *new_pc, size_t *bad)
{
	size_t lo = 0, hi = n;

	*new_pc = pc;
	while (lo < hi) { /* the first site that starts at or after pc */
		size_t mid = lo + (hi - lo) / 2;

		if (plan[order[mid]].addr < pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* The sites before it, back to the first that cannot reach pc. */
	while (lo-- > 0) {
		const struct relive_ctl_write *w = &plan[order[lo]];
		int rc;

		if (w->addr + sizeof(w->bytes) <= pc)
			break;
		rc = fix_one(w, pc, new_pc);
		if (rc) {
			*bad = order[lo];
			return rc;
		}
	}
	return 0;
}
