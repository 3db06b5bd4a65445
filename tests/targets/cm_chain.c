/*
 * tests/targets/cm_chain.c - call chains that must never mix versions.
 *
 * cm_outer() calls cm_inner(); both are patched, each knows its version:
 * cm_outer returns 10 * OUTER + INNER.  Original versions are 1, the patch
 * cm_chain_v2 makes both 2, the replace patch cm_chain_v3r makes both 3.  A
 * chain that returns 11, 22 or 33 ran in one world; any other value mixed
 * the versions of two worlds in one call chain (the consistency model
 * forbids it) and is counted as bad.
 *
 *     cm_chain NCALLERS [NSPAWNERS [NGETPID]]
 *
 * NCALLERS threads (0..64) call cm_outer() in a loop, doing unrelated work
 * between calls.  NSPAWNERS threads (default 0) each create short-lived
 * threads one after another, each of which makes a few chain calls and
 * exits.  NGETPID threads (default 0) call getpid(2) in a tight loop in
 * code no patch touches (the kernel selftest's getpid hammer).
 *
 * Commands (besides those of target.h):
 *     call    -> cm_outer() called by the main thread
 *     pace US -> from now on the callers sleep US microseconds every 32
 *                chains (default 0: they never sleep)
 *     stats   -> "chains=C bad=B v1=X v2=Y v3=Z spawned=S", then
 *                " last_bad=R" after a bad chain
 */
#include "target.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_CALLERS 64

volatile int cm_one = 1;
volatile int cm_window = 200; /* work inside cm_outer before cm_inner */
volatile int cm_gap = 1000;   /* work between two chains */
volatile int cm_pace_us;      /* callers sleep this long every 32 chains */

PATCHABLE int cm_inner(void)
{
	return cm_one;
}

PATCHABLE int cm_outer(void)
{
	int outer = cm_one;

	for (volatile int i = 0; i < cm_window; i++)
		;
	return 10 * outer + cm_inner();
}

struct counters {
	unsigned long chains, bad, v[4];
	long last_bad;
} __attribute__((aligned(64)));

static struct counters callers[MAX_CALLERS + 1]; /* last: spawned threads */
static int ncallers;
static unsigned long spawned;
static pthread_mutex_t spawned_lock = PTHREAD_MUTEX_INITIALIZER;

static void count(struct counters *c, int r, bool shared)
{
	int v = r == 11 ? 1 : r == 22 ? 2 : r == 33 ? 3 : 0;

	if (shared) {
		__atomic_add_fetch(&c->chains, 1, __ATOMIC_RELAXED);
		if (v)
			__atomic_add_fetch(&c->v[v], 1, __ATOMIC_RELAXED);
		else {
			__atomic_store_n(&c->last_bad, r, __ATOMIC_RELAXED);
			__atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
		}
		return;
	}
	/* one writer: plain increments published with relaxed stores */
	if (v)
		__atomic_store_n(&c->v[v], c->v[v] + 1, __ATOMIC_RELAXED);
	else {
		__atomic_store_n(&c->last_bad, r, __ATOMIC_RELAXED);
		__atomic_store_n(&c->bad, c->bad + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&c->chains, c->chains + 1, __ATOMIC_RELAXED);
}

static void *caller_main(void *arg)
{
	struct counters *c = arg;

	for (unsigned long n = 1;; n++) {
		count(c, cm_outer(), false);
		for (volatile int i = 0; i < cm_gap; i++)
			;
		if (n % 32 == 0 && cm_pace_us)
			usleep((useconds_t)cm_pace_us);
	}
	return NULL;
}

static void *child_main(void *arg)
{
	for (int n = 0; n < 20; n++) {
		count(&callers[MAX_CALLERS], cm_outer(), true);
		for (volatile int i = 0; i < cm_gap; i++)
			;
	}
	return arg;
}

static void *spawner_main(void *arg)
{
	for (;;) {
		pthread_t t;

		if (pthread_create(&t, NULL, child_main, NULL) != 0)
			continue;
		pthread_join(t, NULL);
		pthread_mutex_lock(&spawned_lock);
		spawned++;
		pthread_mutex_unlock(&spawned_lock);
	}
	return arg;
}

static void *getpid_main(void *arg)
{
	for (;;)
		syscall(SYS_getpid);
	return arg;
}

static void stats(void)
{
	unsigned long chains = 0, bad = 0, v[4] = { 0 }, sp;
	long last_bad = 0;

	for (int i = 0; i <= MAX_CALLERS; i++) {
		struct counters *c = &callers[i];

		chains += __atomic_load_n(&c->chains, __ATOMIC_RELAXED);
		for (int k = 1; k < 4; k++)
			v[k] += __atomic_load_n(&c->v[k], __ATOMIC_RELAXED);
		if (__atomic_load_n(&c->bad, __ATOMIC_RELAXED)) {
			bad += __atomic_load_n(&c->bad, __ATOMIC_RELAXED);
			last_bad = __atomic_load_n(&c->last_bad,
						   __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_lock(&spawned_lock);
	sp = spawned;
	pthread_mutex_unlock(&spawned_lock);
	if (bad)
		target_reply("chains=%lu bad=%lu v1=%lu v2=%lu v3=%lu "
			     "spawned=%lu last_bad=%ld",
			     chains, bad, v[1], v[2], v[3], sp, last_bad);
	else
		target_reply("chains=%lu bad=0 v1=%lu v2=%lu v3=%lu spawned=%lu",
			     chains, v[1], v[2], v[3], sp);
}

static void start(int n, void *(*fn)(void *), bool counted)
{
	for (int i = 0; i < n; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, fn,
				   counted ? &callers[i] : NULL) != 0) {
			perror("pthread_create");
			exit(1);
		}
		pthread_detach(t);
	}
}

int main(int argc, char **argv)
{
	char line[256];
	int nspawners = argc > 2 ? atoi(argv[2]) : 0;
	int ngetpid = argc > 3 ? atoi(argv[3]) : 0;
	long pace;

	ncallers = argc > 1 ? atoi(argv[1]) : 4;
	if (ncallers < 0 || ncallers > MAX_CALLERS || nspawners < 0 ||
	    nspawners > 16 || ngetpid < 0 || ngetpid > 256) {
		fprintf(stderr, "usage: cm_chain NCALLERS(0..%d) "
			"[NSPAWNERS(0..16) [NGETPID(0..256)]]\n", MAX_CALLERS);
		return 2;
	}
	start(ncallers, caller_main, true);
	start(nspawners, spawner_main, false);
	start(ngetpid, getpid_main, false);
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (strcmp(line, "call") == 0) {
			target_reply("%d", cm_outer());
		} else if (target_arg(line, "pace", &pace) && pace >= 0) {
			cm_pace_us = (int)pace;
			target_reply("pace %ld", pace);
		} else if (strcmp(line, "stats") == 0) {
			stats();
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
