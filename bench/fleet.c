/*
 * bench/fleet.c - one of the many small processes of the many-processes
 * benchmark (`relive patch --all`): it maps libfleet.so, says it is ready,
 * then sleeps in read(2) on its stdin until the benchmark closes it.
 *
 *     fleet FD    writes "ready PID\n" to FD (a pipe shared by the whole
 *                 fleet; the line is shorter than PIPE_BUF, so atomic),
 *                 then for each line read from stdin:
 *                   "PID VALUE\n", VALUE being fleet_value(1): 2 before
 *                   the patch, 101 after;
 *                 or, for a line "dlopen PATH", "PID dlopen OK\n" after
 *                 loading PATH itself (OK 1 or 0): the floor the benchmark
 *                 measures beside `relive patch --all`, the part of a
 *                 patch that no live patcher can avoid in each process.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long fleet_value(long x);

int main(int argc, char **argv)
{
	char buf[4096 + 16], out[64];
	int fd = argc > 1 ? atoi(argv[1]) : 1;
	int n = snprintf(out, sizeof(out), "ready %d\n", (int)getpid());
	ssize_t got;

	if (write(fd, out, (size_t)n) != n)
		return 1;
	/* One line per read: the benchmark waits for each answer. */
	while ((got = read(0, buf, sizeof(buf) - 1)) > 0) {
		buf[got] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (!strncmp(buf, "dlopen ", 7))
			n = snprintf(out, sizeof(out), "%d dlopen %d\n",
				     (int)getpid(),
				     dlopen(buf + 7, RTLD_NOW | RTLD_LOCAL) !=
					     NULL);
		else
			n = snprintf(out, sizeof(out), "%d %ld\n",
				     (int)getpid(), fleet_value(1));
		if (write(fd, out, (size_t)n) != n)
			return 1;
	}
	return 0;
}
