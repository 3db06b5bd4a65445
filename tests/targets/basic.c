/*
 * tests/targets/basic.c - the everyday target: a function to patch in the
 * main executable, one in libcalc, two static functions with the same name
 * (here and in basic_aux.c), and a worker thread that calls them too.
 * Built four ways: basic_pie, basic_nopie, basic_pie_pfe, basic_nopie_pfe
 * (the _pfe ones with -fpatchable-function-entry=5, linked to
 * libcalc_pfe.so instead of libcalc.so).
 *
 * Commands (besides those of target.h):
 *     call N    -> basic_value(N)          original N + 1
 *     lib N     -> calc_value(N)           original N + 2   (libcalc)
 *     tcall N   -> basic_value(N), called by the worker thread
 *     tlib N    -> calc_value(N), called by the worker thread
 *     tburn MS  -> MS, once the worker thread has run MS ms of CPU time
 *     scale1 N  -> static scale() of basic.c      original N * 10
 *     scale2 N  -> static scale() of basic_aux.c  original N * 20
 *     own       -> "own ok", or "own bad NAME": libcalc's common names
 *                  (init, request, ...) still bind to libcalc
 */
#include "calc.h"
#include "target.h"

#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile int basic_one = 1;

int aux_scale(int x);

/* Original behaviour: x + 1.  Patches: fix_main x + 100, stack_p1/2/3
 * x + 1000/2000/3000. */
PATCHABLE int basic_value(int x)
{
	return x + basic_one;
}

/* Same name as the static scale() of basic_aux.c: a patch must say which
 * one with old_sympos.  Original behaviour: x * 10. */
static PATCHABLE int scale(int x)
{
	return x * 10 * basic_one;
}

/* The worker: runs one call at a time for the main thread. */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static int job_kind;    /* 0 none, 1 basic_value, 2 calc_value, 3 burn */
static int job_arg, job_result, job_done;

/* Runs for ms milliseconds of the thread's own CPU time. */
static int burn(int ms)
{
	struct timespec t0, t;
	long long ran;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do {
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
		ran = (t.tv_sec - t0.tv_sec) * 1000LL +
		      (t.tv_nsec - t0.tv_nsec) / 1000000;
	} while (ran < ms);
	return ms;
}

static void *worker_main(void *arg)
{
	pthread_mutex_lock(&job_lock);
	for (;;) {
		while (job_kind == 0)
			pthread_cond_wait(&job_cond, &job_lock);
		job_result = job_kind == 1 ? basic_value(job_arg) :
			     job_kind == 2 ? calc_value(job_arg) :
					     burn(job_arg);
		job_kind = 0;
		job_done = 1;
		pthread_cond_broadcast(&job_cond);
	}
	return arg;
}

static int on_worker(int kind, int arg)
{
	int result;

	pthread_mutex_lock(&job_lock);
	job_kind = kind;
	job_arg = arg;
	job_done = 0;
	pthread_cond_broadcast(&job_cond);
	while (!job_done)
		pthread_cond_wait(&job_cond, &job_lock);
	result = job_result;
	pthread_mutex_unlock(&job_lock);
	return result;
}

int main(void)
{
	char line[512];
	pthread_t worker;
	long n;

	if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	target_idle_threads(1);
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "call", &n)) {
			target_reply("%d", basic_value((int)n));
		} else if (target_arg(line, "lib", &n)) {
			target_reply("%d", calc_value((int)n));
		} else if (target_arg(line, "tcall", &n)) {
			target_reply("%d", on_worker(1, (int)n));
		} else if (target_arg(line, "tlib", &n)) {
			target_reply("%d", on_worker(2, (int)n));
		} else if (target_arg(line, "tburn", &n)) {
			target_reply("%d", on_worker(3, (int)n));
		} else if (target_arg(line, "scale1", &n)) {
			target_reply("%d", scale((int)n));
		} else if (target_arg(line, "scale2", &n)) {
			target_reply("%d", aux_scale((int)n));
		} else if (strcmp(line, "own") == 0) {
			const char *bad = calc_own_check();

			if (bad)
				target_reply("own bad %s", bad);
			else
				target_reply("own ok");
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
