/*
 * bench/many.c - the target of the pause, time-to-take-effect and scale
 * benchmarks: 10000 small functions bf_0000() ... bf_9999() for patches of
 * 1 to 10000 functions, and threads of three kinds:
 *
 *     many NSPIN NSLEEP NBLOCK
 *
 *   spin   read CLOCK_MONOTONIC in a tight loop and record the largest gap
 *          between two consecutive reads: the longest time the thread was
 *          not running (held by relive, or not scheduled);
 *   sleep  nanosleep(1 ms) in a loop and record the largest overshoot of a
 *          sleep past its 1 ms: how late the thread ran again after it
 *          should have (the realistic server thread);
 *   block  read(2) a pipe that no one writes (an idle thread).
 *
 * The measuring threads (spin, then sleep) are created first, so they have
 * the lowest thread ids: relive holds threads in thread-id order, so they
 * are the ones held longest when relive holds all of them at once.
 *
 * Commands, one per line on stdin, one answer line each:
 *   pid    -> the process id
 *   reset  -> "ok" once every measuring thread has started afresh
 *   read   -> "max=G1,G2,... hist=C0,C1,..." the largest gap of each
 *             measuring thread since reset, in ns, and the histogram of all
 *             gaps (bucket i counts gaps in [2^i, 2^(i+1)) us, bucket 0
 *             everything below 2 us)
 *   dlopen PATH -> "ok" or "error MESSAGE" once the main thread has
 *             loaded PATH itself, with no relive: the floor the pause
 *             benchmark measures beside `relive patch`, the loading of the
 *             patch's code that no live patcher can avoid in the target
 *   quit   -> exit
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"

volatile long bench_one = 1;

#define DEFINE_BF(name) \
	__attribute__((noinline, noipa)) long name(long x) { return x + bench_one; }
BENCH_REP10000(DEFINE_BF, bf_)

#define NHIST 24

struct meter {
	_Atomic unsigned gen;       /* generation the thread measures for */
	_Atomic long max;           /* ns */
	_Atomic unsigned long hist[NHIST];
} __attribute__((aligned(64)));

static struct meter *meters;
static int nmeters;
static _Atomic unsigned cur_gen = 1;
static int block_fd = -1;

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void record(struct meter *m, long gap)
{
	long us = gap / 1000;
	int b = 0;

	while (us >= 2 && b < NHIST - 1) {
		us >>= 1;
		b++;
	}
	if (gap > atomic_load_explicit(&m->max, memory_order_relaxed))
		atomic_store_explicit(&m->max, gap, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->hist[b], 1, memory_order_relaxed);
}

/* Starts afresh when a reset came; returns true if it did. */
static bool check_reset(struct meter *m)
{
	unsigned g = atomic_load_explicit(&cur_gen, memory_order_acquire);

	if (g == atomic_load_explicit(&m->gen, memory_order_relaxed))
		return false;
	atomic_store_explicit(&m->max, 0, memory_order_relaxed);
	for (int i = 0; i < NHIST; i++)
		atomic_store_explicit(&m->hist[i], 0, memory_order_relaxed);
	atomic_store_explicit(&m->gen, g, memory_order_release);
	return true;
}

static void *spin_main(void *arg)
{
	struct meter *m = arg;
	long prev = now_ns();

	for (;;) {
		long t = now_ns();

		/* Gaps of 1 us and less are the loop itself: counted in the
		 * histogram only in bulk, to keep the loop tight. */
		if (check_reset(m)) {
			prev = t;
			continue;
		}
		if (t - prev >= 1000)
			record(m, t - prev);
		prev = t;
	}
	return NULL;
}

static void *sleep_main(void *arg)
{
	struct meter *m = arg;
	const struct timespec ms = { 0, 1000000 };

	for (;;) {
		long t0 = now_ns(), late;

		nanosleep(&ms, NULL);
		late = now_ns() - t0 - 1000000;
		if (check_reset(m))
			continue;
		record(m, late < 0 ? 0 : late);
	}
	return NULL;
}

static void *block_main(void *arg)
{
	char c;

	for (;;)
		if (read(block_fd, &c, 1) == 0)
			break;
	return arg;
}

static void start(void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_t t;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 128 * 1024);
	if (pthread_create(&t, &a, fn, arg)) {
		perror("pthread_create");
		exit(1);
	}
	pthread_attr_destroy(&a);
}

static void reset(void)
{
	unsigned g = atomic_fetch_add(&cur_gen, 1) + 1;
	long deadline = now_ns() + 5000000000L;

	for (int i = 0; i < nmeters; i++)
		while (atomic_load_explicit(&meters[i].gen,
					    memory_order_acquire) != g &&
		       now_ns() < deadline)
			usleep(200);
	printf("ok\n");
}

static void read_meters(void)
{
	unsigned long hist[NHIST] = { 0 };

	printf("max=");
	for (int i = 0; i < nmeters; i++) {
		printf("%s%ld", i ? "," : "",
		       atomic_load_explicit(&meters[i].max, memory_order_relaxed));
		for (int b = 0; b < NHIST; b++)
			hist[b] += atomic_load_explicit(&meters[i].hist[b],
							memory_order_relaxed);
	}
	printf(" hist=");
	for (int b = 0; b < NHIST; b++)
		printf("%s%lu", b ? "," : "", hist[b]);
	printf("\n");
}

int main(int argc, char **argv)
{
	int nspin, nsleep, nblock, fds[2];
	char line[256];

	if (argc != 4) {
		fprintf(stderr, "usage: many NSPIN NSLEEP NBLOCK\n");
		return 2;
	}
	nspin = atoi(argv[1]);
	nsleep = atoi(argv[2]);
	nblock = atoi(argv[3]);
	nmeters = nspin + nsleep;
	meters = aligned_alloc(64, sizeof(*meters) * (size_t)(nmeters + 1));
	memset(meters, 0, sizeof(*meters) * (size_t)(nmeters + 1));
	if (pipe(fds)) {
		perror("pipe");
		return 1;
	}
	block_fd = fds[0];
	for (int i = 0; i < nspin; i++)
		start(spin_main, &meters[i]);
	for (int i = 0; i < nsleep; i++)
		start(sleep_main, &meters[nspin + i]);
	for (int i = 0; i < nblock; i++)
		start(block_main, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", (int)getpid());
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "pid", 3))
			printf("%d\n", (int)getpid());
		else if (!strncmp(line, "reset", 5))
			reset();
		else if (!strncmp(line, "read", 4))
			read_meters();
		else if (!strncmp(line, "dlopen ", 7)) {
			line[strcspn(line, "\n")] = '\0';
			if (dlopen(line + 7, RTLD_NOW | RTLD_LOCAL))
				printf("ok\n");
			else
				printf("error %s\n", dlerror());
		} else if (!strncmp(line, "quit", 4))
			break;
		else
			printf("error unknown command\n");
	}
	return 0;
}
