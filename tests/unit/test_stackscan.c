/*
 * tests/unit/test_stackscan.c - the conservative look at a sleeping
 * thread's stack (agent/stackscan.c).
 *
 * The agent switches a thread asleep in a system call only when no word
 * of its stack can be a return address or a saved PC into a version the
 * thread leaves.  Pinned here: a return address one past a range's end (a
 * call as its function's last instruction) counts; an address inside
 * counts as a saved PC; the entry of a function whose entry leads to its
 * stub does not (a function pointer), the entry of any other version does;
 * the other world's ranges do not; pthread_create and signal frames count
 * in either world; the PC counts anywhere in a range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

static struct relive_ctl_range ranges[5];
static uintptr_t restorer[1] = { 0x9000 };
static struct stackscan sc;

static void range(int i, uintptr_t lo, uintptr_t hi, uint32_t world,
		  uint32_t flags, const char *name)
{
	ranges[i].lo = lo;
	ranges[i].hi = hi;
	ranges[i].world = world;
	ranges[i].flags = flags;
	strcpy(ranges[i].name, name);
}

static int setup(void **state)
{
	(void)state;
	/* Given out of order: stackscan_sort orders them. */
	range(0, 0x5000, 0x5040, 0, 0, "copy");            /* relocated copy */
	range(1, 0x1000, 0x1100, 0, RELIVE_RANGE_ENTRY, "f"); /* original */
	range(2, 0x3000, 0x3400, 1, 0, "f_new");           /* other world */
	range(3, 0x2000, 0x2010, 0, 0, "g_old");           /* a version */
	range(4, 0x8000, 0x8040, 0, 0, "stub");
	memset(&sc, 0, sizeof(sc));
	stackscan_sort(ranges, 5, &sc.maxlen);
	sc.r = ranges;
	sc.n = 5;
	sc.world = 0;
	sc.create_lo = 0x7000;
	sc.create_hi = 0x7100;
	sc.restorers = restorer;
	sc.nrestorers = 1;
	stackscan_bounds(&sc);
	return 0;
}

static void test_sorted(void **state)
{
	(void)state;
	for (int i = 1; i < 5; i++)
		assert_true(ranges[i - 1].lo < ranges[i].lo);
	assert_int_equal(sc.maxlen, 0x400);
	assert_int_equal(sc.lo_all, 0x1000);
	assert_int_equal(sc.hi_all, 0x8040);
	/* A restorer outside the bounds still counts. */
	restorer[0] = 0x90000;
	assert_string_equal(stackscan_word(&sc, 0x90000), "a signal frame");
	restorer[0] = 0x9000;
}

static void test_return_addresses(void **state)
{
	(void)state;
	assert_null(stackscan_word(&sc, 0));
	assert_null(stackscan_word(&sc, 0x0fff));
	/* Inside, and one past the end (the call was the last
	 * instruction). */
	assert_string_equal(stackscan_word(&sc, 0x1050), "f");
	assert_string_equal(stackscan_word(&sc, 0x1100), "f");
	assert_null(stackscan_word(&sc, 0x1101));
	assert_string_equal(stackscan_word(&sc, 0x2010), "g_old");
	assert_string_equal(stackscan_word(&sc, 0x5001), "copy");
	assert_string_equal(stackscan_word(&sc, 0x8020), "stub");
	/* The world the thread goes to is no obstacle. */
	assert_null(stackscan_word(&sc, 0x3100));
}

static void test_entries(void **state)
{
	(void)state;
	/* A function pointer to a function whose entry leads to the stub. */
	assert_null(stackscan_word(&sc, 0x1000));
	/* The first instruction of a version reached without the stub:
	 * a signal may have stopped the thread just there. */
	assert_string_equal(stackscan_word(&sc, 0x2000), "g_old");
	assert_string_equal(stackscan_word(&sc, 0x5000), "copy");
}

static void test_creation_and_signals(void **state)
{
	(void)state;
	assert_string_equal(stackscan_word(&sc, 0x7050), "pthread_create");
	assert_string_equal(stackscan_word(&sc, 0x9000), "a signal frame");
	sc.any_world = true;
	assert_null(stackscan_word(&sc, 0x1050));
	assert_string_equal(stackscan_word(&sc, 0x7100), "pthread_create");
	assert_string_equal(stackscan_word(&sc, 0x9000), "a signal frame");
	assert_string_equal(stackscan_pc(&sc, 0x7000), "pthread_create");
	assert_null(stackscan_pc(&sc, 0x1000));
	sc.any_world = false;
}

static void test_pc_and_words(void **state)
{
	const uintptr_t clean[] = { 0x1000, 0x42, 0x3000, 0x6000 };
	const uintptr_t dirty[] = { 0x42, 0x1000, 0x2008, 0x6000 };

	(void)state;
	assert_string_equal(stackscan_pc(&sc, 0x1000), "f");
	assert_string_equal(stackscan_pc(&sc, 0x2005), "g_old");
	assert_null(stackscan_pc(&sc, 0x4000));
	assert_null(stackscan_words(&sc, clean, 4));
	assert_string_equal(stackscan_words(&sc, dirty, 4), "g_old");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted),
		cmocka_unit_test(test_return_addresses),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_creation_and_signals),
		cmocka_unit_test(test_pc_and_words),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
