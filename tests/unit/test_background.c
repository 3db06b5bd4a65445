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
#include <stdbool.h>
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

/* Calls background_pace with a clock started just now, and returns true
 * once a call was over well within the pace (which is at least 50 us), so
 * that it had no reason to yield; *last is then what the call left.  A
 * machine too busy for that in 1000 tries fails the test. */
static bool pace_right_after(uint64_t *last)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t start = now_ns();

		*last = start;
		background_pace(last);
		if (now_ns() - start < 50000) {
			assert_int_equal(*last, start);
			return true;
		}
	}
	return false;
}

static void test_no_yield_before_the_pace(void **state)
{
	uint64_t last;

	(void)state;
	/* The call must leave the clock as it was. */
	assert_true(pace_right_after(&last));
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
