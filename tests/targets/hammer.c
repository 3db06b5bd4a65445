/*
 * tests/targets/hammer.c - threads calling the patched function in a tight
 * loop while a test patches, disables and removes it over and over.  Every
 * answer must be the original one or the patched one; anything else (a torn
 * jump, a clobbered register, a half-switched call) is counted as bad.
 *
 *     hammer [NTHREADS]      (default 8)
 *
 * Commands (besides those of target.h):
 *     call N  -> hammer_value(N)          original N + 1, fix_hammer N + 100
 *     stats   -> "calls=C old=O new=N bad=B threads=T" summed over the
 *                hammering threads; after a bad answer also
 *                " last_bad=IN:OUT"
 */
#include "target.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

volatile int hammer_one = 1;

/* Original behaviour: x + 1.  Patch fix_hammer: x + 100. */
PATCHABLE int hammer_value(int x)
{
	return x + hammer_one;
}

/* One cache line per thread; written by its thread only, read by stats. */
struct counters {
	unsigned long calls, old, new, bad;
	unsigned long last_bad;   /* in << 32 | out */
} __attribute__((aligned(64)));

static struct counters counters[MAX_THREADS];
static int nthreads = 8;

static void *hammer_main(void *arg)
{
	struct counters *c = arg;
	unsigned int i = (unsigned int)(c - counters) * 7919u;
	volatile int in;

	for (;;) {
		int out;

		in = (int)(i++ & 0xffff);
		out = hammer_value(in);
		if (out == in + 1) {
			__atomic_store_n(&c->old, c->old + 1, __ATOMIC_RELAXED);
		} else if (out == in + 100) {
			__atomic_store_n(&c->new, c->new + 1, __ATOMIC_RELAXED);
		} else {
			__atomic_store_n(&c->last_bad,
					 (unsigned long)(unsigned int)in << 32 |
						 (unsigned int)out,
					 __ATOMIC_RELAXED);
			__atomic_store_n(&c->bad, c->bad + 1, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&c->calls, c->calls + 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void stats(void)
{
	unsigned long calls = 0, old = 0, new = 0, bad = 0, last_bad = 0;

	for (int i = 0; i < nthreads; i++) {
		calls += __atomic_load_n(&counters[i].calls, __ATOMIC_RELAXED);
		old += __atomic_load_n(&counters[i].old, __ATOMIC_RELAXED);
		new += __atomic_load_n(&counters[i].new, __ATOMIC_RELAXED);
		if (__atomic_load_n(&counters[i].bad, __ATOMIC_RELAXED)) {
			bad += __atomic_load_n(&counters[i].bad,
					       __ATOMIC_RELAXED);
			last_bad = __atomic_load_n(&counters[i].last_bad,
						   __ATOMIC_RELAXED);
		}
	}
	if (bad)
		target_reply("calls=%lu old=%lu new=%lu bad=%lu threads=%d "
			     "last_bad=%d:%d",
			     calls, old, new, bad, nthreads,
			     (int)(last_bad >> 32), (int)(unsigned int)last_bad);
	else
		target_reply("calls=%lu old=%lu new=%lu bad=0 threads=%d",
			     calls, old, new, nthreads);
}

int main(int argc, char **argv)
{
	char line[512];
	long n;

	if (argc > 1)
		nthreads = atoi(argv[1]);
	if (nthreads < 1 || nthreads > MAX_THREADS) {
		fprintf(stderr, "hammer: NTHREADS must be 1..%d\n", MAX_THREADS);
		return 2;
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, hammer_main, &counters[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_detach(t);
	}
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "call", &n))
			target_reply("%d", hammer_value((int)n));
		else if (strcmp(line, "stats") == 0)
			stats();
		else
			target_reply("error unknown command '%s'", line);
	}
	return 0;
}
