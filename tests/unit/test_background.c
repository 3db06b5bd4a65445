/*
 * tests/unit/test_background.c - cmocka tests of common/background.c's
 * pacing.
 *
 * Why this exists: relive's commands and the agent's requests call
 * background_step() between the steps of their long pieces of work, so
 * that the threads of the program waiting for the CPU get it at least
 * every PACE_NS.  If the clock it keeps were wrong, relive would either
 * never give way (the program's threads wait behind it again) or give way
 * at every step (a patch of a busy process takes twice as long).  These
 * tests check the clock: started by the first call, left alone while the
 * thread has not run for the pace, restarted by a yield, and by a sleep
 * in between (which gave way already); and background_step()'s clock,
 * kept from one step of a thread to the next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "background.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs on the CPU, without a sleep, until ns have passed. */
static void spin(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

static void test_first_call_starts_the_clock(void **state)
{
	struct background_clock c = { 0 };
	uint64_t before, after;

	(void)state;
	before = now_ns();
	assert_false(background_pace(&c));
	after = now_ns();
	assert_true(c.since >= before && c.since <= after);
}

/* Calls background_pace with a clock started just now, and returns true
 * once a call was over well within the pace (which is at least 50 us) and
 * with no preemption in between, so that it had no reason to yield nor to
 * restart the clock.  A machine too busy for that in 1000 tries fails the
 * test. */
static bool pace_right_after(struct background_clock *c)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t start, sw;
		bool yielded;

		c->since = 0;
		background_pace(c); /* starts the clock */
		start = c->since;
		sw = c->switches;
		yielded = background_pace(c);
		/* A preemption in between restarts the clock: try again. */
		if (c->switches == sw && now_ns() - start < 50000) {
			assert_false(yielded);
			assert_int_equal(c->since, start);
			return true;
		}
	}
	return false;
}

static void test_no_yield_before_the_pace(void **state)
{
	struct background_clock c = { 0 };

	(void)state;
	/* The call must leave the clock as it was. */
	assert_true(pace_right_after(&c));
}

/* A run of 10 ms on the CPU: the next step yields, and restarts the clock
 * at the end of the yield.  A preemption during the run restarts it too
 * (the thread gave way), so the run is tried again until one was whole;
 * a machine too busy for that in 100 tries fails the test. */
static void test_yield_once_the_pace_elapsed(void **state)
{
	(void)state;
	for (int i = 0; i < 100; i++) {
		struct background_clock c = { 0 };
		uint64_t before, switches;

		background_pace(&c);
		switches = c.switches;
		spin(10000000u);
		before = now_ns();
		if (background_pace(&c)) {
			assert_true(c.since >= before);
			assert_true(c.since <= now_ns());
			return;
		}
		/* Not yielding is right only if the thread was preempted. */
		assert_int_not_equal(c.switches, switches);
	}
	fail_msg("no run of 10 ms went without a preemption in 100 tries");
}

/* A sleep gave way: the clock restarts at the next step instead of
 * yielding, however long ago it started. */
static void test_sleep_restarts_the_clock(void **state)
{
	struct background_clock c = { 0 };
	const struct timespec ms = { 0, 1000000 };
	uint64_t before;

	(void)state;
	background_pace(&c);
	c.since -= 10000000u; /* as if it had started 10 ms ago */
	nanosleep(&ms, NULL);
	before = now_ns();
	assert_false(background_pace(&c));
	assert_true(c.since >= before);
}

/* In a thread of its own, so that its first step is the thread's first:
 * that step starts the clock, and after a run of 10 ms on the CPU the
 * next one yields (tried again after a preemption, up to 100 times). */
static void *steps(void *arg)
{
	int *result = arg;

	*result = -1;
	if (background_step())
		return NULL; /* the first step yielded */
	for (int i = 0; i < 100; i++) {
		spin(10000000u);
		/* Not yielding is right only after a preemption during the
		 * run, which restarted the clock: run again. */
		if (background_step()) {
			*result = 1;
			return NULL;
		}
	}
	*result = 0;
	return NULL;
}

static void test_step_keeps_the_thread_clock(void **state)
{
	pthread_t t;
	int result = -3;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, steps, &result), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(result, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_call_starts_the_clock),
		cmocka_unit_test(test_no_yield_before_the_pace),
		cmocka_unit_test(test_yield_once_the_pace_elapsed),
		cmocka_unit_test(test_sleep_restarts_the_clock),
		cmocka_unit_test(test_step_keeps_the_thread_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
