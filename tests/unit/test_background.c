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
 * tests check the clock: started by the first call, a yield due once the
 * thread has run the pace without a break and not before, a new run after
 * a context switch, the switches read sparingly (the rule alone, told the
 * time and the switches, so no test depends on how busy the machine is);
 * then the real thing: a yield that restarts the clock, a sleep in
 * between that gave way already, and background_step()'s clock, kept
 * from one step of a thread to the next.  The agent gives way only
 * where a thread of the program could wait for its CPU: the count of
 * threads read from /proc/self/stat, the roomy check against the CPUs the
 * thread may use (or a count given by relive), and a step that does not
 * yield in a roomy program.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

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

/* A thread's context switches as the pure rule's tests want them: a
 * count they set, and how many times it was read. */
static uint64_t fake_switches, fake_reads;

static uint64_t read_fake(void)
{
	fake_reads++;
	return fake_switches;
}

#define PACE BACKGROUND_PACE_NS
#define EVERY BACKGROUND_SWITCHES_EVERY_NS

/* The first decision starts the clock; none is due before the pace has
 * run out, one is due from then on. */
static void test_due_once_the_pace_ran_out(void **state)
{
	struct background_clock c = { 0 };
	const uint64_t t0 = 1000000000u;

	(void)state;
	fake_switches = 5;
	assert_false(background_pace_due(&c, t0, read_fake));
	assert_int_equal(c.since, t0);
	assert_int_equal(c.switches, 5);
	assert_false(background_pace_due(&c, t0 + EVERY, read_fake));
	assert_false(background_pace_due(&c, t0 + PACE - 1, read_fake));
	assert_true(background_pace_due(&c, t0 + PACE, read_fake));
	assert_true(background_pace_due(&c, t0 + 10 * PACE, read_fake));
	assert_int_equal(c.since, t0);
}

/* A context switch since the last reading (a sleep, a wait, a preemption)
 * gave way already: the run starts again from that decision. */
static void test_switch_starts_a_new_run(void **state)
{
	struct background_clock c = { 0 };
	const uint64_t t0 = 1000000000u;

	(void)state;
	fake_switches = 5;
	assert_false(background_pace_due(&c, t0, read_fake));
	fake_switches = 6;
	assert_false(background_pace_due(&c, t0 + 2 * PACE, read_fake));
	assert_int_equal(c.since, t0 + 2 * PACE);
	assert_int_equal(c.switches, 6);
	assert_false(background_pace_due(&c, t0 + 3 * PACE - 1, read_fake));
	assert_true(background_pace_due(&c, t0 + 3 * PACE, read_fake));
}

/* The switches (a system call) are read at most every EVERY ns while the
 * pace runs; once it has run out, at every decision. */
static void test_switches_read_sparingly(void **state)
{
	struct background_clock c = { 0 };
	const uint64_t t0 = 1000000000u;

	(void)state;
	fake_switches = 5;
	fake_reads = 0;
	background_pace_due(&c, t0, read_fake);
	assert_int_equal(fake_reads, 1);
	background_pace_due(&c, t0 + EVERY / 2, read_fake);
	background_pace_due(&c, t0 + EVERY - 1, read_fake);
	assert_int_equal(fake_reads, 1);
	background_pace_due(&c, t0 + EVERY, read_fake);
	assert_int_equal(fake_reads, 2);
	assert_int_equal(c.read_at, t0 + EVERY);
	background_pace_due(&c, t0 + EVERY + 1, read_fake);
	assert_int_equal(fake_reads, 2);
	assert_true(background_pace_due(&c, t0 + PACE, read_fake));
	assert_true(background_pace_due(&c, t0 + PACE + 1, read_fake));
	assert_int_equal(fake_reads, 4);
}

static uint64_t thread_switches(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_THREAD, &ru), 0);
	return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

/* background_pace() itself, on a clock whose run started two paces ago
 * with the thread's real count of switches: it yields, and the clock
 * starts again after the yield.  A preemption between the reading here
 * and the one inside (a few microseconds) rightly restarts the clock
 * instead: tried again, up to 1000 times. */
static void test_pace_yields_and_restarts(void **state)
{
	(void)state;
	for (int i = 0; i < 1000; i++) {
		struct background_clock c = { 0 };
		uint64_t before = now_ns();

		c.since = c.read_at = before - 2 * PACE;
		c.switches = thread_switches();
		if (background_pace(&c)) {
			assert_true(c.since >= before);
			assert_true(c.since <= now_ns());
			assert_int_equal(c.read_at, c.since);
			return;
		}
		assert_true(c.since >= before); /* restarted, not yielded */
	}
	fail_msg("a preemption in each of 1000 windows of a few us");
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
 * that step starts the clock, and after a run of 2 ms on the CPU (five
 * times the pace) the next one yields; a preemption during the run
 * restarted the clock, so the run is tried again, up to 1000 times. */
static void *steps(void *arg)
{
	int *result = arg;

	*result = -1;
	if (background_step())
		return NULL; /* the first step yielded */
	for (int i = 0; i < 1000; i++) {
		spin(2000000u);
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

/* A step in a thread marked roomy never yields, however long it ran (20
 * runs of 2 ms, five times the pace: most go without a preemption, and
 * any of those would yield if the mark were ignored); the same runs yield
 * once the mark is taken away (tried again after a preemption). */
static void *roomy_steps(void *arg)
{
	int *result = arg;

	*result = -1;
	background_set_roomy(true);
	background_step();
	for (int i = 0; i < 20; i++) {
		spin(2000000u);
		if (background_step())
			return NULL; /* yielded though roomy */
	}
	background_set_roomy(false);
	*result = 0;
	for (int i = 0; i < 1000; i++) {
		spin(2000000u);
		if (background_step()) {
			*result = 1;
			return NULL;
		}
	}
	return NULL;
}

static void test_no_yield_in_a_roomy_program(void **state)
{
	pthread_t t;
	int result = -3;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, roomy_steps, &result), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(result, 1);
}

static void test_stat_threads(void **state)
{
	(void)state;
	/* Fields 3 to 20 after the command; num_threads is 7. */
	assert_int_equal(background_stat_threads(
		"1234 (fleet) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 "
		"20 0 7 0 12345 1000 50 18446744073709551615\n"), 7);
	/* A command holding spaces and parentheses: the last ')' ends it. */
	assert_int_equal(background_stat_threads(
		"42 (a) b (c) d) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 64 0 "
		"99\n"), 64);
	assert_int_equal(background_stat_threads("garbage"), -1);
	assert_int_equal(background_stat_threads("1 (x) S 1 2 3"), -1);
	assert_int_equal(background_stat_threads(
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 x 0 1\n"), -1);
}

static int release_fd = -1;

/* Waits until the test lets it go. */
static void *parked(void *arg)
{
	char c;
	ssize_t n = read(release_fd, &c, 1); /* 0: the test closed the pipe */

	(void)arg;
	(void)n;
	return NULL;
}

/* Polls background_roomy() until it says want, up to 10 s (a thread that
 * was joined may still be counted for a moment while the kernel ends it). */
static bool roomy_becomes(bool want)
{
	const struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 10000; i++) {
		if (background_roomy() == want)
			return true;
		nanosleep(&ms, NULL);
	}
	return false;
}

/* As many threads parked as the CPUs this thread may use: one of them may
 * wait for a CPU, so the program is no longer roomy; roomy again once
 * they are gone. */
static void test_roomy_follows_the_threads(void **state)
{
	cpu_set_t cpus;
	pthread_t t[CPU_SETSIZE];
	int fds[2], n, i;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(cpus), &cpus), 0);
	n = CPU_COUNT(&cpus);
	assert_true(roomy_becomes(true));
	assert_int_equal(pipe(fds), 0);
	release_fd = fds[0];
	for (i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, parked, NULL), 0);
	assert_false(background_roomy());
	close(fds[1]); /* every read returns: the threads end */
	for (i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	close(fds[0]);
	assert_true(roomy_becomes(true));
}

/* A count of threads given by someone else (relive, with a request): the
 * same rule, against the CPUs this thread may use. */
static void test_roomy_by_a_given_count(void **state)
{
	cpu_set_t cpus;
	long n;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(cpus), &cpus), 0);
	n = CPU_COUNT(&cpus);
	assert_true(background_roomy_threads(1));
	assert_true(background_roomy_threads(n));
	assert_false(background_roomy_threads(n + 1));
	assert_false(background_roomy_threads(100000));
	assert_false(background_roomy_threads(0));
	assert_false(background_roomy_threads(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_call_starts_the_clock),
		cmocka_unit_test(test_due_once_the_pace_ran_out),
		cmocka_unit_test(test_switch_starts_a_new_run),
		cmocka_unit_test(test_switches_read_sparingly),
		cmocka_unit_test(test_pace_yields_and_restarts),
		cmocka_unit_test(test_sleep_restarts_the_clock),
		cmocka_unit_test(test_step_keeps_the_thread_clock),
		cmocka_unit_test(test_no_yield_in_a_roomy_program),
		cmocka_unit_test(test_stat_threads),
		cmocka_unit_test(test_roomy_follows_the_threads),
		cmocka_unit_test(test_roomy_by_a_given_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
