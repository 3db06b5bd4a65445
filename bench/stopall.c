/*
 * bench/stopall.c - the other floor of the many-processes benchmark: stop
 * one thread of each process, read its registers, let it go, one process
 * after the other, the least a controller does to check a thread's stack
 * from outside (no unwinding, no patch).
 *
 *     stopall PID...   prints "stopped N threads in S s" (wall time)
 *
 * Exit status 1 if any thread could not be stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct user_regs_struct regs;
	int bad = 0, status;
	double t0 = now();

	for (int i = 1; i < argc; i++) {
		pid_t pid = (pid_t)atoi(argv[i]);

		if (ptrace(PTRACE_SEIZE, pid, NULL, NULL)) {
			perror("PTRACE_SEIZE");
			bad = 1;
			continue;
		}
		if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) ||
		    waitpid(pid, &status, __WALL) != pid ||
		    ptrace(PTRACE_GETREGS, pid, NULL, &regs))
			bad = 1;
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	printf("stopped %d threads in %.6f s\n", argc - 1, now() - t0);
	return bad;
}
