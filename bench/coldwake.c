/*
 * bench/coldwake.c - what this machine charges for waking a process that
 * has been idle, beside the many-processes benchmark.
 *
 * `relive patch --all` wakes a thread in each of many processes that sat
 * idle since they started, and that thread then runs code and touches
 * memory the process has not touched for seconds.  On a virtual machine
 * (or any machine whose caches other work has taken meanwhile) that costs
 * more than the same work in a process that just ran.  This program
 * measures that cost alone, with no relive: children that each touch
 * PAGES pages of their own when woken, woken one at a time through a pipe.
 *
 *     coldwake N PAGES IDLE_MS
 *
 * starts N children (each maps PAGES pages and writes them once), wakes
 * each in turn twice in a row (the second round is "hot": every child ran
 * moments before), sleeps IDLE_MS, wakes each in turn once more ("cold").
 * A wake is: write a byte to the child's pipe, the child reads one byte of
 * each of its pages, writes a byte back, the parent reads it.  Prints
 *
 *     hot_us H cold_us C
 *
 * the median wake of each round in microseconds.  Exit status 1 on a
 * failure (fork, pipe, a child that died).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The child: touch its pages at each byte read, answer, until EOF. */
static void child(int in, int out, long pages)
{
	volatile char *m = NULL;
	unsigned long sum = 0;
	char c;

	if (pages) {
		m = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			_exit(1);
		for (long i = 0; i < pages; i++)
			m[i * PAGE] = (char)i;
	}
	while (read(in, &c, 1) == 1) {
		for (long i = 0; i < pages; i++)
			sum += (unsigned char)m[i * PAGE];
		c = (char)sum;
		if (write(out, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

/* Wakes each child once; the time of each wake in t.  0 or -1. */
static int round_trip(int n, const int *to, int back, double *t)
{
	char c = 'w';

	for (int i = 0; i < n; i++) {
		double t0 = now_us();

		if (write(to[i], &c, 1) != 1 || read(back, &c, 1) != 1)
			return -1;
		t[i] = now_us() - t0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int n, back[2], *to, rc = 0;
	long pages, idle_ms;
	pid_t *pids;
	double *t, hot, cold;

	if (argc != 4 || (n = atoi(argv[1])) < 1 ||
	    (pages = atol(argv[2])) < 0 || (idle_ms = atol(argv[3])) < 0) {
		fprintf(stderr, "usage: coldwake N PAGES IDLE_MS\n");
		return 2;
	}
	to = calloc((size_t)n, sizeof(*to));
	pids = calloc((size_t)n, sizeof(*pids));
	t = calloc((size_t)n, sizeof(*t));
	if (!to || !pids || !t || pipe(back)) {
		perror("coldwake");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int p[2];

		if (pipe(p)) {
			perror("pipe");
			rc = 1;
			n = i;
			break;
		}
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			close(p[0]);
			close(p[1]);
			rc = 1;
			n = i;
			break;
		}
		if (pids[i] == 0) {
			close(p[1]);
			close(back[0]);
			child(p[0], back[1], pages);
		}
		close(p[0]);
		to[i] = p[1];
	}
	if (!rc && (round_trip(n, to, back[0], t) ||
		    round_trip(n, to, back[0], t))) {
		fprintf(stderr, "coldwake: a child did not answer\n");
		rc = 1;
	}
	if (!rc) {
		hot = median(t, n);
		usleep((useconds_t)(idle_ms * 1000));
		if (round_trip(n, to, back[0], t)) {
			fprintf(stderr, "coldwake: a child did not answer\n");
			rc = 1;
		} else {
			cold = median(t, n);
			printf("hot_us %.1f cold_us %.1f\n", hot, cold);
		}
	}
	/* Each child also holds the write ends of the pipes made before it,
	 * so closing them here is no EOF: end the children outright. */
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	return rc;
}
