/*
 * tests/unit/test_codespan.c - the plan of held code writes grouped into
 * spans (relive/codespan.c).
 *
 * Why this exists: relive/codewrite.c writes every entry jump the agent
 * could not make alone while each thread of the target is held, a span of
 * code at a time, the bytes between the sites written back as they were.
 * A span that took in a byte it should not, a site spliced at the wrong
 * offset, or a held thread's PC looked up among the wrong sites would
 * corrupt the target's code or resume a thread in the middle of a new
 * jump.  The plans here are made up (addresses, bytes); the spans' bytes
 * are buffers standing for the target's code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codespan.h"

/* A redirection at addr: 5 bytes e9 + addr, displacing instructions at
 * offsets 0, 1 and 4 (copied to copy + 0, 1 and 7). */
static struct relive_ctl_write site(uint64_t addr, uint64_t copy)
{
	struct relive_ctl_write w;

	memset(&w, 0, sizeof(w));
	w.addr = addr;
	w.len = 5;
	w.redirect = 1;
	w.n_insns = 3;
	w.old_off[1] = 1;
	w.old_off[2] = 4;
	w.new_off[1] = 1;
	w.new_off[2] = 7;
	w.copy = copy;
	memset(w.expect, 0x90, sizeof(w.expect));
	w.bytes[0] = 0xe9;
	memcpy(w.bytes + 1, &addr, 4);
	return w;
}

static void test_sorted_and_grouped(void **state)
{
	/* Out of order: sites in the page at 0x401000, one of them reaching
	 * into the next page, where one more site then joins the span; one
	 * in the page after (a span of its own); one far away. */
	struct relive_ctl_write plan[] = {
		site(0x500000, 0), site(0x401010, 0), site(0x401000, 0),
		site(0x401ffd, 0), site(0x401020, 0), site(0x402100, 0),
		site(0x403000, 0), site(0x401ff0, 0),
	};
	size_t n = sizeof(plan) / sizeof(plan[0]), order[8];
	struct codespan s[8];
	size_t ns;

	(void)state;
	codespan_sort(plan, n, order);
	for (size_t i = 1; i < n; i++)
		assert_true(plan[order[i - 1]].addr < plan[order[i]].addr);
	ns = codespan_group(plan, order, n, s);
	assert_int_equal(ns, 3);
	assert_int_equal(s[0].start, 0x401000);
	assert_int_equal(s[0].len, 0x402105 - 0x401000);
	assert_int_equal(s[0].first, 0);
	assert_int_equal(s[0].n, 6);
	assert_int_equal(s[1].start, 0x403000);
	assert_int_equal(s[1].len, 5);
	assert_int_equal(s[1].first, 6);
	assert_int_equal(s[1].n, 1);
	assert_int_equal(s[2].start, 0x500000);
	assert_false(s[0].todo);
}

/* Sites in two neighbouring pages, none reaching from one into the
 * other: two spans, so a span never takes in a page no site is in (it
 * could be another mapping, or a gap). */
static void test_no_span_across_a_page_without_a_site(void **state)
{
	struct relive_ctl_write plan[] = {
		site(0x401ff0, 0), site(0x402000, 0),
	};
	size_t order[2];
	struct codespan s[2];

	(void)state;
	codespan_sort(plan, 2, order);
	assert_int_equal(codespan_group(plan, order, 2, s), 2);
	assert_int_equal(s[0].len, 5);
	assert_int_equal(s[1].start, 0x402000);
}

static void test_splice_keeps_the_bytes_between(void **state)
{
	struct relive_ctl_write plan[] = {
		site(0x401030, 0), site(0x401000, 0), site(0x401010, 0),
	};
	size_t order[3], todo = 0, bad = 99;
	struct codespan s[3];
	uint8_t now[0x35], after[0x35], want[0x35];

	(void)state;
	/* The code: nops at the sites, other bytes between them. */
	for (size_t i = 0; i < sizeof(now); i++)
		now[i] = (uint8_t)(0x40 + i);
	memset(now + 0x00, 0x90, 5);
	memset(now + 0x10, 0x90, 5);
	memset(now + 0x30, 0x90, 5);
	/* The site at 0x401010 was written by an interrupted run. */
	memcpy(now + 0x10, plan[2].bytes, 5);
	codespan_sort(plan, 3, order);
	assert_int_equal(codespan_group(plan, order, 3, s), 1);
	assert_int_equal(s[0].len, sizeof(now));
	assert_int_equal(codespan_splice(plan, order, &s[0], now, after, &todo,
					 &bad), 0);
	assert_int_equal(todo, 2);
	assert_true(s[0].todo);
	assert_int_equal(plan[2].len, 0); /* done already: left out */
	memcpy(want, now, sizeof(want));
	memcpy(want + 0x00, plan[1].bytes, 5);
	memcpy(want + 0x30, plan[0].bytes, 5);
	assert_memory_equal(after, want, sizeof(want));
}

static void test_splice_refuses_unexpected_bytes(void **state)
{
	struct relive_ctl_write plan[] = {
		site(0x401000, 0), site(0x401010, 0),
	};
	size_t order[2], todo = 0, bad = 99;
	struct codespan s[2];
	uint8_t now[0x15], after[0x15];

	(void)state;
	memset(now, 0x90, sizeof(now));
	now[0x12] = 0xcc; /* a breakpoint in the second site */
	codespan_sort(plan, 2, order);
	codespan_group(plan, order, 2, s);
	assert_int_equal(codespan_splice(plan, order, &s[0], now, after, &todo,
					 &bad), -1);
	assert_int_equal(bad, 1);
}

static void test_fix_pc(void **state)
{
	struct relive_ctl_write plan[] = {
		site(0x401010, 0x700100), site(0x401000, 0x700000),
		site(0x401020, 0x700200),
	};
	size_t order[3], bad = 99;
	uint64_t to;

	(void)state;
	codespan_sort(plan, 3, order);
	/* Elsewhere, at a site's first byte, past its displaced bytes:
	 * stays. */
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x400000, &to, &bad), 0);
	assert_int_equal(to, 0x400000);
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401010, &to, &bad), 0);
	assert_int_equal(to, 0x401010);
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401015, &to, &bad), 0);
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x402000, &to, &bad), 0);
	/* On a displaced instruction: moved into that site's copy. */
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401011, &to, &bad), 1);
	assert_int_equal(to, 0x700101);
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401024, &to, &bad), 1);
	assert_int_equal(to, 0x700207);
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401004, &to, &bad), 1);
	assert_int_equal(to, 0x700007);
	/* Inside a displaced instruction: cannot happen, refused. */
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401012, &to, &bad), -1);
	assert_int_equal(bad, 0);
	/* A site done already, and a restoration, are not in the way. */
	plan[0].len = 0;
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401011, &to, &bad), 0);
	assert_int_equal(to, 0x401011);
	plan[2].redirect = 0;
	assert_int_equal(codespan_fix_pc(plan, order, 3, 0x401024, &to, &bad), 0);
}

/* A 12-byte site and the one that starts right after it: a PC on the
 * long site's last displaced instruction belongs to it, a PC on the next
 * site's first byte to none. */
static void test_fix_pc_next_to_a_long_site(void **state)
{
	struct relive_ctl_write plan[] = {
		site(0x40100c, 0x700100), site(0x401000, 0x700000),
	};
	size_t order[2], bad = 99;
	uint64_t to;

	(void)state;
	plan[1].len = 12;
	plan[1].n_insns = 4;
	plan[1].old_off[3] = 11;
	plan[1].new_off[3] = 20;
	codespan_sort(plan, 2, order);
	assert_int_equal(codespan_fix_pc(plan, order, 2, 0x40100b, &to, &bad), 1);
	assert_int_equal(to, 0x700014);
	assert_int_equal(codespan_fix_pc(plan, order, 2, 0x40100c, &to, &bad), 0);
	assert_int_equal(codespan_fix_pc(plan, order, 2, 0x40100d, &to, &bad), 1);
	assert_int_equal(to, 0x700101);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_and_grouped),
		cmocka_unit_test(test_no_span_across_a_page_without_a_site),
		cmocka_unit_test(test_splice_keeps_the_bytes_between),
		cmocka_unit_test(test_splice_refuses_unexpected_bytes),
		cmocka_unit_test(test_fix_pc),
		cmocka_unit_test(test_fix_pc_next_to_a_long_site),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
