/*
 * common/background.c - a thread of relive's gives way to every thread
 * that wakes up.
 *
 * Linux's fair scheduler (EEVDF, since 6.6) lets the running thread finish
 * its time slice before a thread that just woke up on the same CPU gets it,
 * unless the woken thread has a shorter slice than the running one (Linux
 * 6.12: sched_attr.sched_runtime sets a fair thread's slice; the
 * scheduler's PREEMPT_SHORT).  The slice is about 1.4 ms on a 2-CPU
 * machine, so a server thread woken while the agent loaded a patch on its
 * CPU was late by up to that much.  relive's threads (the controller's,
 * the agent's own) therefore take a slice three times the default: every
 * thread of the program, with the default slice, may preempt them as soon
 * as it wakes, and the earlier deadline that comes with its shorter slice
 * makes the scheduler pick it.  Their share of the CPU does not change
 * (the nice value's business, left as it is).
 *
 * A slice is also how far a thread's deadline lies ahead each time it
 * becomes runnable, so a longer one makes relive wait longer behind busy
 * threads after each of its short sleeps (a ptrace stop, a request).
 * Measured side by side, 25 runs each, with 64 threads sleeping 1 ms: the
 * median sleeper's longest gap during a 100-function patch was 453, 300,
 * 229 and 213 us for slices of 1.125, 3, 7 and 71 times the default;
 * patching a process of 8 spinning threads took 126, 156 and 219 ms for
 * the first three (817 ms for the last, in another series).  Three times
 * is the compromise.
 *
 * Kernels without custom slices report 0 and are left alone, as are
 * real-time threads.  docs/performance.md ("Pause") has the measurements.
 *
 * The slice is not enough for a long stretch of work.  While the agent
 * resolved the functions of a 100-function patch (4 ms on one CPU, with no
 * sleep), `perf sched timehist` showed the program's threads that woke on
 * its CPU moved to the other one ("migrated: cpu 1 => 0") instead of
 * preempting it, where all 64 of them then queued behind each other.  So
 * such work also calls background_step() between its steps, which yields
 * the CPU once the thread has run PACE_NS without a break.  Measured side
 * by side in six series of 16-30 fresh processes, with the agent's loops
 * over functions and entry writes paced, the largest gap of 64
 * 1ms-sleepers during the patch (median over runs) went from 1.02-1.41 ms
 * to 0.89-1.01 ms, and its upper quartile from 1.5-2.5 to 1.0-1.8 ms.
 * Every 100 us did as well for the gaps, but the patch of a process of 64
 * spinning threads took 11.2 s instead of 5.3 s (each yield waits for a
 * turn among them); every 400 us, 5.8 s (200 us later made no difference
 * to the gaps).
 *
 * The controller had the same long stretches: `perf sched timehist` showed
 * relive running 1.1 ms without a break while it built its unwinder, with
 * sleepers queued behind it on its CPU.  So its symbol table reads, its
 * unwind tables and its thread checks are steps too, as are the agent's
 * symbol table read and its dlopen of the patch; and a step counts the
 * thread's run since it was last off its CPU, not since it last yielded
 * (a sleep, such as the wait for a thread to stop, gave way already), so
 * that steps after a wait do not yield for nothing.  Measured side by
 * side with the agent's pacing alone, fresh processes, the median over
 * runs of the largest gap went from 0.975 to 0.755 ms (50 each) and from
 * 1.023 to 0.909 ms (100 each, a busier spell), the median sleeper's
 * unchanged.  Patching a process of 64 spinning threads took 6.6 s
 * instead of 6.0 s (each yield waits for a turn among them).
 *
 * A yield serves the program only when one of its threads may be waiting
 * for the CPU the yielding thread holds.  The agent asks at each request
 * whether its process has fewer threads besides the serving one than CPUs
 * that thread may use (background_roomy_threads: the count relive read in
 * /proc/PID/status just before the request, else background_roomy: the
 * count in /proc/self/stat; the thread's affinity; reading the count in
 * the agent cost it about 0.1 ms of a request of 1.2).  In such a roomy program each thread that wakes
 * finds a CPU the agent does not hold, or preempts it (its shorter
 * slice), and the request's steps do not yield: they gave way only to
 * other programs, which the kernel's fair share serves anyway.  That is
 * `relive patch --all` over idle single-threaded programs, where the
 * loading request yielded about three times, each time most likely to
 * another process of the command: six alternating pairs, 1000 preloaded
 * processes, medians 1.51 s against 1.57 s, the agent's CPU per process
 * 1.91 against 1.99 ms.  A program with as many other threads as CPUs
 * or more (the 64 sleepers of the pause benchmark, the example server,
 * Redis) is paced as before.  The controller keeps its pacing: it starts
 * its steps before it has read how many threads its target has.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "background.h"

#ifndef SCHED_BATCH
#define SCHED_BATCH 3
#endif
#define RESET_ON_FORK 0x01

/* The first version of the kernel's struct sched_attr (48 bytes), which
 * every kernel since 3.14 accepts. */
struct attr_v0 {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

static uint64_t slice_ns; /* what background_thread() asked for */

static bool set_slice(uint64_t ns)
{
	struct attr_v0 a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0))
		return false;
	if (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH)
		return false;
	/* Kernels without custom slices report 0: nothing to do there. */
	if (!a.sched_runtime)
		return false;
	if (!ns)
		ns = 3 * a.sched_runtime;
	a.size = sizeof(a);
	a.sched_flags &= RESET_ON_FORK;
	a.sched_runtime = ns;
	a.sched_deadline = a.sched_period = 0;
	if (syscall(SYS_sched_setattr, 0, &a, 0))
		return false;
	slice_ns = ns;
	return true;
}

bool background_thread(void)
{
	return set_slice(slice_ns);
}

uint64_t background_slice(void)
{
	struct attr_v0 a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) ||
	    (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH))
		return 0;
	return a.sched_runtime;
}

void background_restore(uint64_t ns)
{
	if (ns)
		(void)set_slice(ns);
}

/* How long a paced piece of work runs before it gives way (see
 * background_pace). */
#define PACE_NS BACKGROUND_PACE_NS

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The calling thread's context switches so far; 0 when the kernel will not
 * say (a seccomp filter), and the clock then runs on through sleeps. */
static uint64_t switches(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

/* How often a step reads the thread's context switches (a system call):
 * a run is then counted from at most this late after it began. */
#define SWITCHES_EVERY_NS BACKGROUND_SWITCHES_EVERY_NS

bool background_pace_due(struct background_clock *c, uint64_t now,
			 uint64_t (*read_switches)(void))
{
	uint64_t sw;

	if (c->since && now - c->read_at < SWITCHES_EVERY_NS &&
	    now - c->since < PACE_NS)
		return false; /* read the switches a moment ago */
	sw = read_switches();
	c->read_at = now;
	if (!c->since || sw != c->switches) {
		/* The first step, or the thread was off its CPU since the
		 * last one (a sleep, a wait, a preemption): a new run. */
		c->since = now;
		c->switches = sw;
		return false;
	}
	return now - c->since >= PACE_NS;
}

bool background_pace(struct background_clock *c)
{
	if (!background_pace_due(c, mono_ns(), switches))
		return false;
	sched_yield();
	c->since = c->read_at = mono_ns();
	c->switches = switches();
	return true;
}

static __thread bool roomy;

void background_set_roomy(bool r)
{
	roomy = r;
}

bool background_step(void)
{
	static __thread struct background_clock clock;

	if (roomy)
		return false;
	return background_pace(&clock);
}

long background_stat_threads(const char *line)
{
	const char *p = strrchr(line, ')');
	long v;
	int field;

	if (!p || p[1] != ' ')
		return -1;
	p += 2; /* at field 3, the state */
	for (field = 3; field < 20; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -1;
	v = strtol(p, NULL, 10);
	return v > 0 ? v : -1;
}

bool background_roomy_threads(long threads)
{
	cpu_set_t cpus;

	if (threads < 1 || sched_getaffinity(0, sizeof(cpus), &cpus))
		return false;
	return threads - 1 < CPU_COUNT(&cpus);
}

bool background_roomy(void)
{
	char buf[1024];
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return background_roomy_threads(background_stat_threads(buf));
}
