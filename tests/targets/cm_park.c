/*
 * tests/targets/cm_park.c - threads that keep a patched function on their
 * stack, so a transition cannot finish until they leave it (the kernel's
 * "is sleeping on function ...").
 *
 * cm_f() calls cm_g(), may park (block on a pipe read) inside, then calls
 * cm_g() again.  It returns F*100 + G1*10 + G2: F the version of cm_f, G1
 * and G2 the versions of cm_g it got before and after parking.  Original
 * versions are 1; the patch cm_park_fix makes cm_f and cm_g version 2 (its
 * cm_f parks the same way), so a consistent call chain returns 111 or 222,
 * and anything else mixes worlds.
 *
 * cm_spin() spins until told to stop (original: returns 1 when stopped;
 * cm_park_fix: returns 2 at once).  cm_value(N): original N + 1,
 * cm_park_fix N + 100.
 *
 * Commands (besides those of target.h):
 *     f          -> cm_f(0) called by the main thread
 *     wf         -> cm_f(0) called by the parking worker
 *     park       -> "parked TID": the worker is inside cm_f(1) (the version
 *                   of its world), after its first call of cm_g, about to
 *                   block on a pipe
 *     release    -> lets the parked worker go; answers what cm_f returned
 *     spin       -> "spinning TID": the spinner is inside cm_spin()
 *     unspin     -> stops the spinner; answers what cm_spin returned
 *     value N    -> cm_value(N)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#include "target.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int cm_one = 1;
static int park_pipe[2];
int cm_park_fd = -1;               /* read end, for the patch's cm_f too */
volatile int cm_parked_tid;
static volatile int spin_stop;
static volatile int spin_tid;
volatile unsigned long cm_spins;

PATCHABLE int cm_g(void)
{
	return cm_one;
}

PATCHABLE int cm_f(int park)
{
	int g1 = cm_g(), g2;
	char c;

	if (park) {
		__atomic_store_n(&cm_parked_tid, gettid(), __ATOMIC_SEQ_CST);
		while (read(cm_park_fd, &c, 1) != 1)
			;
	}
	g2 = cm_g();
	return 100 * cm_one + 10 * g1 + g2;
}

PATCHABLE int cm_spin(void)
{
	__atomic_store_n(&spin_tid, gettid(), __ATOMIC_SEQ_CST);
	while (!spin_stop)
		cm_spins++;
	return cm_one;
}

PATCHABLE int cm_value(int x)
{
	return x + cm_one;
}

/* A worker runs one job at a time for the main thread. */
struct worker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int job;          /* 0 none, else the job's kind */
	int result, done;
};

enum { JOB_F = 1, JOB_PARK, JOB_SPIN };

static struct worker parker = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0
};
static struct worker spinner = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		int job, r = 0;

		while (w->job == 0)
			pthread_cond_wait(&w->cond, &w->lock);
		job = w->job;
		pthread_mutex_unlock(&w->lock);
		if (job == JOB_F)
			r = cm_f(0);
		else if (job == JOB_PARK)
			r = cm_f(1);
		else if (job == JOB_SPIN)
			r = cm_spin();
		pthread_mutex_lock(&w->lock);
		w->result = r;
		w->job = 0;
		w->done = 1;
		pthread_cond_broadcast(&w->cond);
	}
	return NULL;
}

static void post(struct worker *w, int job)
{
	pthread_mutex_lock(&w->lock);
	w->job = job;
	w->done = 0;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static int result(struct worker *w)
{
	int r;

	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	r = w->result;
	w->done = 0;
	pthread_mutex_unlock(&w->lock);
	return r;
}

static int wait_nonzero(volatile int *v)
{
	int x;

	while ((x = __atomic_load_n(v, __ATOMIC_SEQ_CST)) == 0)
		sched_yield();
	return x;
}

int main(void)
{
	char line[256];
	long n;
	pthread_t t;

	if (pipe(park_pipe) < 0) {
		perror("pipe");
		return 1;
	}
	cm_park_fd = park_pipe[0];
	if (pthread_create(&t, NULL, worker_main, &parker) ||
	    pthread_create(&t, NULL, worker_main, &spinner)) {
		perror("pthread_create");
		return 1;
	}
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (strcmp(line, "f") == 0) {
			target_reply("%d", cm_f(0));
		} else if (strcmp(line, "wf") == 0) {
			post(&parker, JOB_F);
			target_reply("%d", result(&parker));
		} else if (strcmp(line, "park") == 0) {
			cm_parked_tid = 0;
			post(&parker, JOB_PARK);
			target_reply("parked %d", wait_nonzero(&cm_parked_tid));
		} else if (strcmp(line, "release") == 0) {
			if (write(park_pipe[1], "x", 1) != 1)
				target_reply("error write");
			else
				target_reply("%d", result(&parker));
		} else if (strcmp(line, "spin") == 0) {
			spin_tid = 0;
			spin_stop = 0;
			post(&spinner, JOB_SPIN);
			target_reply("spinning %d", wait_nonzero(&spin_tid));
		} else if (strcmp(line, "unspin") == 0) {
			spin_stop = 1;
			target_reply("%d", result(&spinner));
		} else if (target_arg(line, "value", &n)) {
			target_reply("%d", cm_value((int)n));
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
