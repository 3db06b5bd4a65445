/*
 * tests/unit/test_background.c - cmocka tests of common/background.c's
 * pacing.
 *
 * Why this exists: the agent's long requests (resolving the functions of a
 * patch, writing their entry bytes) call background_pace() between steps so
 * that the threads of the program waiting for its CPU get it at least
 * every PACE_NS.  If the clock it keeps were wrong, the agent would either
 * never give way (the program's threads wait behind it again) or give way
 * at every step (a patch of a busy process takes twice as long).  These
 * tests check the clock: started by the first call, left alone while the
 * pace has not elapsed, moved to the time of the yield once it has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "background.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_first_call_starts_the_clock(void **state)
{
	uint64_t last = 0, before, after;

	(void)state;
	before = now_ns();
	background_pace(&last);
	after = now_ns();
	assert_true(last >= before && last <= after);
}

static void test_no_yield_before_the_pace(void **state)
{
	uint64_t start = now_ns(), last = start;

	(void)state;
	/* Well within the pace (which is at least 50 us), even on a slow
	 * machine: the call must leave the clock as it was. */
	background_pace(&last);
	if (now_ns() - start < 50000)
		assert_int_equal(last, start);
}

static void test_yield_once_the_pace_elapsed(void **state)
{
	uint64_t before = now_ns();
	uint64_t last = before - 10000000u; /* 10 ms ago */

	(void)state;
	background_pace(&last);
	/* It gave way and restarted the clock at the end of the yield. */
	assert_true(last >= before);
	assert_true(last <= now_ns());
	/* ... so the next call, right after, does not yield again. */
	before = last;
	background_pace(&last);
	if (now_ns() - before < 50000)
		assert_int_equal(last, before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_call_starts_the_clock),
		cmocka_unit_test(test_no_yield_before_the_pace),
		cmocka_unit_test(test_yield_once_the_pace_elapsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
