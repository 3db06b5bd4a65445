/*
 * relive/codespan.h - the agent's plan of code writes, grouped for the hold.
 *
 * relive/codewrite.c writes the entry jumps the agent could not make alone
 * while every thread of the target is held.  A patch of many functions
 * has thousands of them, most a few bytes apart: written one system call
 * each, they held every thread for 15 ms (10000 functions).  This is the
 * pure part of writing them a stretch of code at a time: the sites sorted
 * by address and grouped into spans, each span's new bytes made from what
 * it holds now, and the lookup of a held thread's PC among the sorted
 * sites.  No I/O here: tests/unit/test_codespan.c tests it.
 */
#ifndef RELIVE_CODESPAN_H
#define RELIVE_CODESPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

/* The page size: a site joins the span before it when it starts in the
 * page where that span ends.  Every page of a span then holds bytes of a
 * site, so the whole span is code of one mapping (mappings are made of
 * whole pages): never a gap, never a program's data. */
#define CODESPAN_PAGE 4096

struct codespan {
	uint64_t start;
	size_t len;
	size_t first, n;   /* its sites: order[first .. first + n) */
	bool todo;         /* holds a site still to be written */
};

/* Fills order[0..n) with the indices of plan[] sorted by address. */
void codespan_sort(const struct relive_ctl_write *plan, size_t n,
		   size_t *order);

/* Groups the sorted sites into spans (spans[] has room for n; see
 * CODESPAN_PAGE); returns their number. */
size_t codespan_group(const struct relive_ctl_write *plan,
		      const size_t *order, size_t n, struct codespan *spans);

/*
 * Checks span s's sites against `now`, its bytes as read from the target
 * (s->len of them), and makes `after`, the bytes to write: now with each
 * site's new bytes.  A site whose bytes are its new ones already (written
 * by an interrupted run) gets len 0 and is left out; one whose bytes are
 * neither its expected nor its new ones fails the whole plan: returns -1
 * with *bad the index in plan[] of that site.  Sets s->todo when a site is
 * left to write, and adds their number to *todo.
 */
int codespan_splice(struct relive_ctl_write *plan, const size_t *order,
		    struct codespan *s, const uint8_t *now, uint8_t *after,
		    size_t *todo, size_t *bad);

/*
 * Where a thread held with its PC at pc must be resumed before the sites
 * are written: a PC on an instruction boundary inside the bytes a
 * redirection displaces moves to the same instruction in the site's
 * original copy (returns 1, *new_pc set); anywhere else it stays (returns
 * 0, *new_pc = pc).  A PC inside one of those instructions cannot happen
 * and returns -1 (*bad the site's index in plan[]).  Sites of len 0 (done
 * already) and restorations are never in the way.
 */
int codespan_fix_pc(const struct relive_ctl_write *plan, const size_t *order,
		    size_t n, uint64_t pc, uint64_t *new_pc, size_t *bad);

#endif
