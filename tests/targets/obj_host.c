/*
 * tests/targets/obj_host.c - the host of the "objects that come and go"
 * scenarios (tests/scenarios/test_objects.py).  It links none of the
 * obj_* plugin libraries: it dlopens and dlcloses them by path on command,
 * so a patch can be enabled before a library is loaded, and outlive it.
 *
 * Non-exported symbols that patches reach with KLP_SYMBOL: main_static
 * (static volatile, 10 at start), main_helper (static, x * 3 + 1), tv
 * (static __thread), dup_var (static, 111 here and 222 in obj_host_aux.c).
 *
 * Commands (besides those of target.h):
 *     open SLOT PATH SEQ [local|global]
 *                     -> setenv OBJ_SEQ=SEQ (the plugin's constructor reads
 *                        it), dlopen(PATH, RTLD_NOW | RTLD_LOCAL (default)
 *                        or RTLD_GLOBAL) into handle slot SLOT (0..7);
 *                        "ok" or "err <dlerror>"
 *     close SLOT      -> dlclose; "ok" or "err <dlerror>"
 *     call SLOT NAME N -> int NAME(int) found with dlsym in SLOT, called
 *                        with N: its result, or "nosym"
 *     get SLOT NAME   -> the int variable NAME found with dlsym, or "nosym"
 *     addr SLOT NAME  -> the address dlsym gives, in hex, or "nosym"
 *     compute N       -> compute(N)           original N + 1
 *     touch N         -> main_touch(N)        original N
 *     probe N         -> main_probe(N)        original N
 *     mstatic         -> main_static
 *     mhelper N       -> main_helper(N)       N * 3 + 1
 *     dup N           -> dup_report(N)        original N
 *     dupvars         -> "111 222": both dup_var
 *     tvset N         -> sets this thread's tv
 *     tvget           -> this thread's tv, through tv_get()
 *     tvrep N         -> tls_report(N)        original N
 *     t CMD           -> CMD run by the worker thread (its own tv)
 *     park            -> "parked" once a new thread sleeps inside
 *                        main_park() (in a pipe read)
 *     unpark          -> wakes it and joins it: main_park(1), original 2
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "target.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int main_static = 10;
static volatile int dup_var = 111;
static __thread int tv;
/* Volatile loads make every function to patch longer than a jump. */
static volatile int zero, one = 1;

int aux_dup_var(void);

static PATCHABLE int main_helper(int x)
{
	return x * 3 + 1;
}

static PATCHABLE int tv_get(void)
{
	return tv;
}

PATCHABLE int compute(int x)
{
	return x + one;
}

PATCHABLE int main_touch(int x)
{
	return x + zero;
}

PATCHABLE int main_probe(int x)
{
	return x + zero;
}

PATCHABLE int dup_report(int x)
{
	return x + zero;
}

PATCHABLE int tls_report(int x)
{
	return x + zero;
}

static int park_pipe[2];
static sem_t park_entered;
static pthread_t park_thread;
static bool parked;

PATCHABLE int main_park(int x)
{
	char c;

	sem_post(&park_entered);
	while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return x + one;
}

static void *park_main(void *arg)
{
	return (void *)(long)main_park((int)(long)arg);
}

static void *slots[8];

static bool slot_arg(const char *s, int *slot)
{
	*slot = atoi(s);
	return *slot >= 0 && *slot < 8;
}

static void *lookup(const char *args, char *name, size_t len)
{
	int slot;
	char sl[16];

	if (sscanf(args, "%15s %63s", sl, name) != 2 || !slot_arg(sl, &slot) ||
	    !slots[slot])
		return NULL;
	(void)len;
	return dlsym(slots[slot], name);
}

static void dispatch(const char *line);

/* The worker thread: runs one command line at a time for the main one. */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static char job_line[4096];
static int job_pending, job_done;

static void *worker_main(void *arg)
{
	pthread_mutex_lock(&job_lock);
	for (;;) {
		while (!job_pending)
			pthread_cond_wait(&job_cond, &job_lock);
		dispatch(job_line);
		job_pending = 0;
		job_done = 1;
		pthread_cond_broadcast(&job_cond);
	}
	return arg;
}

static void on_worker(const char *line)
{
	pthread_mutex_lock(&job_lock);
	snprintf(job_line, sizeof(job_line), "%s", line);
	job_done = 0;
	job_pending = 1;
	pthread_cond_broadcast(&job_cond);
	while (!job_done)
		pthread_cond_wait(&job_cond, &job_lock);
	pthread_mutex_unlock(&job_lock);
}

static void dispatch(const char *line)
{
	char name[64], path[4096], sl[16], seq[32], mode[16];
	long n;
	int slot;
	void *p;

	if (target_common(line))
		return;
	if (!strncmp(line, "open ", 5)) {
		int k = sscanf(line + 5, "%15s %4095s %31s %15s", sl, path, seq,
			       mode);
		int flags = RTLD_NOW;

		if (k < 3 || !slot_arg(sl, &slot) || slots[slot]) {
			target_reply("err bad open");
			return;
		}
		if (k == 4 && !strcmp(mode, "global"))
			flags |= RTLD_GLOBAL;
		else
			flags |= RTLD_LOCAL;
		setenv("OBJ_SEQ", seq, 1);
		slots[slot] = dlopen(path, flags);
		if (slots[slot])
			target_reply("ok");
		else
			target_reply("err %s", dlerror());
	} else if (!strncmp(line, "close ", 6)) {
		if (!slot_arg(line + 6, &slot) || !slots[slot]) {
			target_reply("err bad close");
			return;
		}
		if (dlclose(slots[slot]))
			target_reply("err %s", dlerror());
		else
			target_reply("ok");
		slots[slot] = NULL;
	} else if (!strncmp(line, "call ", 5)) {
		int (*f)(int) = (int (*)(int))lookup(line + 5, name,
						      sizeof(name));
		const char *num = strrchr(line, ' ');

		if (!f)
			target_reply("nosym");
		else
			target_reply("%d", f(atoi(num + 1)));
	} else if (!strncmp(line, "get ", 4)) {
		int *v = lookup(line + 4, name, sizeof(name));

		if (!v)
			target_reply("nosym");
		else
			target_reply("%d", *(volatile int *)v);
	} else if (!strncmp(line, "addr ", 5)) {
		p = lookup(line + 5, name, sizeof(name));
		if (!p)
			target_reply("nosym");
		else
			target_reply("%p", p);
	} else if (target_arg(line, "compute", &n)) {
		target_reply("%d", compute((int)n));
	} else if (target_arg(line, "touch", &n)) {
		target_reply("%d", main_touch((int)n));
	} else if (target_arg(line, "probe", &n)) {
		target_reply("%d", main_probe((int)n));
	} else if (!strcmp(line, "mstatic")) {
		target_reply("%d", main_static);
	} else if (target_arg(line, "mhelper", &n)) {
		target_reply("%d", main_helper((int)n));
	} else if (target_arg(line, "dup", &n)) {
		target_reply("%d", dup_report((int)n));
	} else if (!strcmp(line, "dupvars")) {
		target_reply("%d %d", dup_var, aux_dup_var());
	} else if (target_arg(line, "tvset", &n)) {
		tv = (int)n;
		target_reply("ok");
	} else if (!strcmp(line, "tvget")) {
		target_reply("%d", tv_get());
	} else if (target_arg(line, "tvrep", &n)) {
		target_reply("%d", tls_report((int)n));
	} else if (!strcmp(line, "park") && !parked) {
		if (pipe(park_pipe) ||
		    pthread_create(&park_thread, NULL, park_main, (void *)1L)) {
			target_reply("err park");
			return;
		}
		parked = true;
		while (sem_wait(&park_entered) && errno == EINTR)
			;
		target_reply("parked");
	} else if (!strcmp(line, "unpark") && parked) {
		void *ret;

		if (write(park_pipe[1], "x", 1) != 1 ||
		    pthread_join(park_thread, &ret)) {
			target_reply("err unpark");
			return;
		}
		close(park_pipe[0]);
		close(park_pipe[1]);
		parked = false;
		target_reply("%ld", (long)ret);
	} else if (!strncmp(line, "t ", 2)) {
		on_worker(line + 2);
	} else {
		target_reply("unknown command: %s", line);
	}
}

int main(void)
{
	char line[4096];
	pthread_t t;

	sem_init(&park_entered, 0, 0);
	if (pthread_create(&t, NULL, worker_main, NULL)) {
		perror("pthread_create");
		return 1;
	}
	target_idle_threads(1);
	target_reply("ready");
	while (target_next(line, sizeof(line)))
		dispatch(line);
	return 0;
}
