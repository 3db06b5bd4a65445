/*
 * tests/targets/cm_multi.c - the target of the kernel-selftest rows: stacked
 * patches and atomic replace, callbacks of present objects (the executable
 * and libcalc.so), shadow variables, system states.
 *
 * Commands (besides those of target.h):
 *     fa N / fb N / fc N  -> cm_fa(N) / cm_fb(N) / cm_fc(N)
 *                            original N + 1, N + 2, N + 3
 *     lib N               -> calc_value(N) of libcalc.so, original N + 2
 *     sh OP I ID VAL      -> cm_shadow_op(OP, &things[I], ID, VAL): the
 *                            shadow-variable patch decides what OP does;
 *                            original: -100 (nothing patched)
 *     shstress T ITERS    -> T threads each call cm_shadow_stress(i, ITERS,
 *                            &things[i], &things[SHARED]) at once; answers
 *                            "sum=S unpatched=U" (S the summed returns, U
 *                            the number of calls that returned -100)
 *     state               -> cm_state_probe(); original 0
 */
#include "calc.h"
#include "target.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile int cm_one = 1;

PATCHABLE int cm_fa(int x)
{
	return x + cm_one;
}

PATCHABLE int cm_fb(int x)
{
	return x + 2 * cm_one;
}

PATCHABLE int cm_fc(int x)
{
	return x + 3 * cm_one;
}

/* Objects that shadow variables are attached to. */
#define NTHINGS 256
#define SHARED 200
struct thing {
	long payload[4];
};
static struct thing things[NTHINGS];

PATCHABLE long cm_shadow_op(long op, void *obj, long id, long val)
{
	(void)op, (void)obj, (void)id, (void)val;
	return -100 * cm_one;
}

PATCHABLE long cm_shadow_stress(long idx, long iters, void *own,
				void *shared)
{
	(void)idx, (void)iters, (void)own, (void)shared;
	return -100 * cm_one;
}

PATCHABLE long cm_state_probe(void)
{
	return 0 * cm_one;
}

struct stress_job {
	pthread_t t;
	long idx, iters, ret;
};

static void *stress_main(void *arg)
{
	struct stress_job *j = arg;

	j->ret = cm_shadow_stress(j->idx, j->iters, &things[j->idx],
				  &things[SHARED]);
	return NULL;
}

static void shstress(long nthreads, long iters)
{
	struct stress_job jobs[64];
	long sum = 0, unpatched = 0;

	if (nthreads < 1 || nthreads > 64) {
		target_reply("error threads 1..64");
		return;
	}
	for (long i = 0; i < nthreads; i++) {
		jobs[i].idx = i;
		jobs[i].iters = iters;
		if (pthread_create(&jobs[i].t, NULL, stress_main, &jobs[i])) {
			target_reply("error pthread_create");
			exit(1);
		}
	}
	for (long i = 0; i < nthreads; i++) {
		pthread_join(jobs[i].t, NULL);
		if (jobs[i].ret == -100)
			unpatched++;
		else
			sum += jobs[i].ret;
	}
	target_reply("sum=%ld unpatched=%ld", sum, unpatched);
}

int main(void)
{
	char line[256];
	long n, op, i, id, val, t, iters;
	int used;

	target_idle_threads(2);
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "fa", &n)) {
			target_reply("%d", cm_fa((int)n));
		} else if (target_arg(line, "fb", &n)) {
			target_reply("%d", cm_fb((int)n));
		} else if (target_arg(line, "fc", &n)) {
			target_reply("%d", cm_fc((int)n));
		} else if (target_arg(line, "lib", &n)) {
			target_reply("%d", calc_value((int)n));
		} else if (sscanf(line, "sh %ld %ld %ld %ld%n", &op, &i, &id,
				  &val, &used) == 4 && line[used] == '\0') {
			if (i < 0 || i >= NTHINGS)
				target_reply("error index");
			else
				target_reply("%ld", cm_shadow_op(op, &things[i],
								 id, val));
		} else if (sscanf(line, "shstress %ld %ld%n", &t, &iters,
				  &used) == 2 && line[used] == '\0') {
			shstress(t, iters);
		} else if (strcmp(line, "state") == 0) {
			target_reply("%ld", cm_state_probe());
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
