/*
 * tests/targets/target.h - the line protocol shared by the programs that the
 * scenario tests patch (tests/scenarios/).
 *
 * A target reads one command per line on stdin and answers exactly one line
 * on stdout, flushed at once, so a test can write a command and read its
 * answer with a deadline.  It prints "ready" once its threads are running.
 * Commands every target understands (target_common()):
 *
 *     pid        -> the process id (the target may run under a wrapper)
 *     threads    -> number of threads (entries of /proc/self/task)
 *     sym NAME   -> "sym NAME none", or "sym NAME FILE": the object that
 *                   dlsym(RTLD_DEFAULT, NAME) finds, by file name
 *     alarms US  -> "alarms on": SIGALRM every US microseconds from now on,
 *                   handled (SA_RESTART) by whichever thread gets it
 *     alarmed    -> how many SIGALRMs were handled
 *     fork       -> the pid of a child that only waits in pause(2) to be
 *                   killed (the test kills it)
 *     closefd FD -> "closed FD" or "not closed FD": close(2) of a descriptor
 *     sigblock   -> "blocked N": each of the N threads blocks every signal
 *                   from now on (a handler run on each sets the mask its
 *                   return puts back)
 *     quit       -> "bye", then exit status 0 (EOF on stdin does the same)
 *
 * Functions that a test patches are marked PATCHABLE: noipa keeps them out
 * of line and stops GCC from specialising their callers on their bodies
 * (constant propagation, IPA register allocation), as a program built for
 * live patching would be (GCC's -flive-patching does the same).  Their
 * inputs come from stdin or from volatile variables, so no call is folded.
 */
#ifndef RELIVE_TEST_TARGET_H
#define RELIVE_TEST_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#define PATCHABLE __attribute__((noinline, noipa))

/* Prints one answer line and flushes it.  Safe from any thread. */
void target_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads the next command line without its newline.  Returns false at EOF. */
bool target_next(char *line, size_t size);

/* Answers the commands common to all targets; returns false for others. */
bool target_common(const char *line);

/* Parses the integer argument after a command word ("call 5"). */
bool target_arg(const char *line, const char *cmd, long *arg);

/* Starts n threads that sleep on a condition variable for the life of the
 * process, so every target is multi-threaded even when idle. */
void target_idle_threads(int n);

#endif
