/*
 * tests/targets/coldpart.c - a thread asleep in the .cold part of a
 * function.  GCC moves the unlikely code of coldpart_gate() into a separate
 * function, "coldpart_gate.cold", entered only by jumps from
 * coldpart_gate(): a thread there is still running coldpart_gate(), and a
 * transition that replaces it must wait for that thread.
 *
 * Protocol (target.h, plus):
 *     call N    -> coldpart_gate(N) on this thread (N >= 0: N + 1)
 *     park      -> starts a thread that calls coldpart_gate(-1), which
 *                  waits in the cold part until "release"; answers "parked"
 *                  once that thread is in the cold part's read(2)
 *     release   -> lets it go; answers "released R" with what the parked
 *                  call returned (original: 1; fix_coldpart: 1001)
 */
#include "target.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int gate_pipe[2];
static volatile int parked;
static volatile int bias = 1;

static __attribute__((noinline, cold)) void report_parked(void)
{
	__atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
}

/* Original: v + 1, and for v < 0 (unlikely) a wait on the pipe, then 1. */
PATCHABLE int coldpart_gate(int v)
{
	if (__builtin_expect(v < 0, 0)) {
		char c;

		report_parked();
		while (read(gate_pipe[0], &c, 1) != 1)
			;
		return bias;
	}
	return v + bias;
}

static int parked_result;

static void *parker(void *arg)
{
	(void)arg;
	parked_result = coldpart_gate(-1);
	return NULL;
}

int main(void)
{
	char line[256];
	pthread_t t;
	long n;

	if (pipe(gate_pipe))
		return 1;
	target_idle_threads(2);
	target_reply("ready");
	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "call", &n)) {
			target_reply("%d", coldpart_gate((int)n));
		} else if (!strcmp(line, "park")) {
			pthread_create(&t, NULL, parker, NULL);
			while (!__atomic_load_n(&parked, __ATOMIC_ACQUIRE))
				usleep(1000);
			target_reply("parked");
		} else if (!strcmp(line, "release")) {
			if (write(gate_pipe[1], "x", 1) != 1)
				return 1;
			pthread_join(t, NULL);
			target_reply("released %d", parked_result);
		} else {
			target_reply("unknown command");
		}
	}
	return 0;
}
