/*
 * bench/fleet.c - one of the many small processes of the many-processes
 * benchmark (`relive patch --all`): it maps libfleet.so, says it is ready,
 * then sleeps in read(2) on its stdin until the benchmark closes it.
 *
 *     fleet FD    writes "ready PID\n" to FD (a pipe shared by the whole
 *                 fleet; the line is shorter than PIPE_BUF, so atomic),
 *                 then "PID VALUE\n" after each line read from stdin,
 *                 VALUE being fleet_value(1): 2 before the patch, 101 after
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long fleet_value(long x);

int main(int argc, char **argv)
{
	char buf[64];
	int fd = argc > 1 ? atoi(argv[1]) : 1;
	int n = snprintf(buf, sizeof(buf), "ready %d\n", (int)getpid());

	if (write(fd, buf, (size_t)n) != n)
		return 1;
	while (read(0, buf, sizeof(buf)) > 0) {
		n = snprintf(buf, sizeof(buf), "%d %ld\n", (int)getpid(),
			     fleet_value(1));
		if (write(fd, buf, (size_t)n) != n)
			return 1;
	}
	return 0;
}
