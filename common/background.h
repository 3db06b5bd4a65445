/*
 * common/background.h - making a thread of relive's give way to every
 * thread that wakes up.
 *
 * The controller and the agent's own thread do their work while the
 * target's threads run.  On a machine with few CPUs, a thread of the
 * program that wakes up (a timer, a request) on the CPU where one of them
 * runs used to wait for the end of its time slice: up to a few
 * milliseconds.  See background.c.
 */
#ifndef RELIVE_BACKGROUND_H
#define RELIVE_BACKGROUND_H

#include <stdbool.h>
#include <stdint.h>

/* Marks the calling thread (and the threads it creates later) as one that
 * any waking thread may preempt.  Returns true if the kernel took it;
 * false changes nothing (an older kernel, a real-time thread, a filter
 * that forbids the call). */
bool background_thread(void);

/* The calling thread's slice (a fair thread's sched_runtime), to give to
 * background_restore() after a change of its scheduling policy takes it
 * away (relive/codewrite.c raises the controller to SCHED_FIFO for a
 * moment); 0 when there is none to restore.  Read from the kernel, not
 * remembered: the controller's mark was set by relive/launch.c, which has
 * its own copy of this file. */
uint64_t background_slice(void);

/* Gives the calling thread the slice ns again; nothing when ns is 0. */
void background_restore(uint64_t ns);

/* How long the calling thread has run without a break: since when, and
 * its count of context switches when last read (a sleep or a preemption
 * since gave way already).  All zero to start. */
struct background_clock {
	uint64_t since;    /* CLOCK_MONOTONIC, ns */
	uint64_t switches; /* voluntary + involuntary, of the thread */
	uint64_t read_at;  /* when switches was read, ns */
};

/* A long piece of work calls this between its steps: once the calling
 * thread has run for PACE_NS without a break, it yields its CPU to the
 * threads waiting there.  Returns true if it yielded. */
bool background_pace(struct background_clock *c);

/* How long background_pace() lets a thread run without a break, and how
 * often at most it reads the thread's context switches. */
#define BACKGROUND_PACE_NS 400000u
#define BACKGROUND_SWITCHES_EVERY_NS 50000u

/* background_pace()'s decision, at time now (CLOCK_MONOTONIC, ns), with
 * read_switches() giving the thread's context switches: updates the clock
 * and returns true when the thread has run BACKGROUND_PACE_NS without a
 * break and should yield.  Nothing else is read, so the rule can be
 * checked on a clock that is told the time. */
bool background_pace_due(struct background_clock *c, uint64_t now,
			 uint64_t (*read_switches)(void));

/* background_pace() on a clock of the calling thread's own, which the
 * steps of one piece of work share wherever they are: a symbol table
 * read, an unwind table opened, a patched function resolved, an entry
 * written (relive's commands, the agent's requests).  The clock starts at
 * the thread's first call.  Never yields while the calling thread's
 * program is marked roomy (background_set_roomy). */
bool background_step(void);

/* Marks whether the program the calling thread works in leaves a CPU to
 * each of its other threads (background_roomy()): then a yield of
 * background_step() could only serve other programs, which the kernel's
 * fair share serves anyway, and it makes none.  Until the first call, a
 * thread's program counts as crowded: its steps give way. */
void background_set_roomy(bool roomy);

/* Does the calling process have fewer threads besides the calling one
 * than the calling thread may use CPUs (its affinity)?  false when
 * either cannot be read. */
bool background_roomy(void);
/* The same for a program of that many threads (counted by someone else:
 * relive tells the agent with a request); false when threads < 1. */
bool background_roomy_threads(long threads);

/* The number of threads in a line of /proc/PID/stat (its 20th field, read
 * after the command's closing parenthesis, which may itself hold spaces
 * and parentheses); -1 if the line is not one. */
long background_stat_threads(const char *line);

#endif
